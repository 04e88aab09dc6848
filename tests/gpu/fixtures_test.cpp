// Every fixture model and adapter on the CUDA backend against transformers/peft:
// float32 storage within 1e-3 with identical greedy tokens; bfloat16 within
// 0.05 with >= 95% of greedy positions matching before the first divergence, or,
// where transformers' own bf16 run drifts further than that on these deliberately
// sensitive fixtures (LORAX_BF16_YARDSTICK, written by hf_bf16_drift.py in the same
// gpu-check run: the worse of its eager and sdpa attention), no worse than
// transformers plus a margin.
// Prints one summary line per fixture for scripts/gpu-check.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include <unistd.h>

#include "adapters/peft_adapter.h"
#include "fixture_reference.h"
#include "runtime/cuda/cuda_backend.h"
#include "safetensors_writer.h"

namespace lorax {
namespace {

namespace fs = std::filesystem;
using testing::Reference;
using testing::RunOptions;

struct Mode {
  DType dtype;
  const char* name;
  double logprob_tol;
  double min_agreement;
};
const Mode kModes[] = {{DType::F32, "float32", 1e-3, 1.0}, {DType::BF16, "bfloat16", 0.05, 0.95}};

// transformers/peft's own bf16 drift per fixture ("models/llama", "llama/attn-r8").
const nlohmann::json& yardstick() {
  static const nlohmann::json y = [] {
    const char* path = std::getenv("LORAX_BF16_YARDSTICK");
    if (!path) return nlohmann::json::object();
    std::ifstream in(path);
    return nlohmann::json::parse(in, nullptr, false);
  }();
  return y;
}

void check(const fs::path& ref_dir, const fs::path& model_dir, bool is_adapter) {
  Reference ref = testing::read_reference(ref_dir);
  const std::string name = ref_dir.parent_path().filename().string() + "/" + ref_dir.filename().string();
  for (const Mode& mode : kModes) {
    SCOPED_TRACE(ref.name + " " + mode.name);
    auto backend = make_cuda_backend(mode.dtype);
    auto model = Model::load(model_dir.string(), *backend);
    RunOptions opt;
    if (is_adapter)
      opt.adapter = std::make_shared<AdapterWeights>(load_peft_adapter(ref_dir.string(), ref.name, model->spec(), *backend));
    auto got = run_cases(*model, ref, opt);
    const double err = testing::max_logprob_error(ref, got), agree = testing::greedy_agreement(ref, got);
    double tol = mode.logprob_tol, min_agree = mode.min_agreement;
    if (mode.dtype != DType::F32 && yardstick().contains(name)) {
      // Margins below the spread between transformers' own eager and sdpa bf16
      // runs of these fixtures (up to 2.0x in log-prob error, 29 points in
      // agreement): greedy agreement on them swings that far between sound
      // implementations (ours: 19.5 points between the tensor-core and paged
      // prefill, 9.7 between two decode attention layouts), the teacher-forced
      // log-prob error much less.
      tol = std::max(tol, 1.5 * yardstick()[name]["max_dlogprob"].get<double>());
      min_agree = std::min(min_agree, yardstick()[name]["agreement"].get<double>() - 0.25);
    }
    std::printf("GPU-FIXTURE %-9s %-40s max|dlogprob| %.2e  greedy-agreement %5.1f%%  (limits %.2e, %.0f%%)\n",
                mode.name, name.c_str(), err, 100.0 * agree, tol, 100.0 * min_agree);
    EXPECT_LT(err, tol);
    EXPECT_GE(agree, min_agree);

    // Prefix caching on the device: a second round of the same prompts reuses
    // the first round's blocks (the attention kernels read a cached context
    // they did not write in this step) and answers within the same limits.
    RunOptions cached = opt;
    cached.prefill_details = false;  // a prompt log-prob request would reuse nothing
    cached.rounds = 2;
    EngineStats stats;
    const double cached_agree = testing::greedy_agreement(ref, run_cases(*model, ref, cached, &stats));
    std::printf("GPU-FIXTURE %-9s %-40s prefix-cached round: %llu of %llu prompt tokens reused, greedy-agreement %5.1f%%\n",
                mode.name, name.c_str(), static_cast<unsigned long long>(stats.prefix_hits),
                static_cast<unsigned long long>(stats.prefix_queries), 100.0 * cached_agree);
    EXPECT_GT(stats.prefix_hits, 0u);
    EXPECT_GE(cached_agree, min_agree);
  }
}

// --kv-cache-dtype fp8 on the device against transformers with its K/V rounded
// through e4m3 (reference-fp8-kv.json). Our K/V are computed by other GEMMs
// than the CPU's, so an element near an e4m3 rounding boundary can round the
// other way (a 6-12% step in one element): float32 gets 3e-2, not the 1e-3 the
// CPU meets with identical codes.
void check_fp8_kv(const fs::path& dir) {
  if (!fs::exists(dir / "reference-fp8-kv.json")) GTEST_SKIP() << "no FP8 reference";
  Reference ref = testing::read_reference(dir, "reference-fp8-kv.json");
  for (const Mode& mode : kModes) {
    SCOPED_TRACE(ref.name + " fp8 KV " + mode.name);
    auto backend = make_cuda_backend(mode.dtype);
    auto model = Model::load(dir.string(), *backend);
    RunOptions opt;
    opt.kv_dtype = DType::F8E4M3;
    auto got = run_cases(*model, ref, opt);
    const double err = testing::max_logprob_error(ref, got), agree = testing::greedy_agreement(ref, got);
    double tol = 3e-2, min_agree = 0.9;  // float32: see above (measured up to 2.4e-2 on neox-sequential)
    if (mode.dtype != DType::F32) {
      // bfloat16: transformers' own bf16 run with K/V through e4m3 against the
      // same reference (hf_bf16_drift.py), with the bf16 mode's margins.
      const std::string key = "fp8-kv/models/" + dir.filename().string();
      if (!yardstick().contains(key)) {
        ADD_FAILURE() << "no bf16 FP8-KV yardstick for " << key << " (LORAX_BF16_YARDSTICK)";
        continue;
      }
      tol = 1.5 * yardstick()[key]["max_dlogprob"].get<double>();
      min_agree = yardstick()[key]["agreement"].get<double>() - 0.25;
    }
    std::printf("GPU-FIXTURE %-9s %-40s fp8-KV max|dlogprob| %.2e  greedy-agreement %5.1f%%  (limits %.2e, %.0f%%)\n",
                mode.name, ("models/" + dir.filename().string()).c_str(), err, 100.0 * agree, tol, 100.0 * min_agree);
    EXPECT_LT(err, tol);
    EXPECT_GE(agree, min_agree);
  }
}

class GpuFp8KvFixture : public ::testing::TestWithParam<fs::path> {};
TEST_P(GpuFp8KvFixture, MatchesTransformersWithRoundedKv) { check_fp8_kv(GetParam()); }
INSTANTIATE_TEST_SUITE_P(Models, GpuFp8KvFixture, ::testing::ValuesIn(testing::reference_dirs("tests/fixtures/models")));

class GpuModelFixture : public ::testing::TestWithParam<fs::path> {};
TEST_P(GpuModelFixture, MatchesTransformers) { check(GetParam(), GetParam(), false); }
INSTANTIATE_TEST_SUITE_P(Models, GpuModelFixture, ::testing::ValuesIn(testing::reference_dirs("tests/fixtures/models")));

// The trained demo model (real weights, license-style prompts, 24-token
// continuations), held to the same criteria as the fixtures.
TEST(GpuTrainedModel, DemoMatchesTransformers) { check("tests/fixtures/demo", "models/demo", false); }

using testing::adapter_dirs;
class GpuAdapterFixture : public ::testing::TestWithParam<fs::path> {};
TEST_P(GpuAdapterFixture, MatchesPeft) {
  check(GetParam(), fs::path("tests/fixtures/models") / GetParam().parent_path().filename(), true);
}
INSTANTIATE_TEST_SUITE_P(Adapters, GpuAdapterFixture, ::testing::ValuesIn(adapter_dirs()));
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GpuAdapterFixture);

// A rank the adapter kernels cannot take is refused when the adapter loads, with
// the limit in the message, not when a batch using it reaches the GPU.
TEST(GpuAdapterLoading, RanksAboveTheKernelsLimitAreRefused) {
  const ModelSpec spec = parse_model_spec(R"({"model_type":"llama","vocab_size":32,"hidden_size":16,
      "num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":24})", "config.json");
  auto backend = make_cuda_backend(DType::BF16);
  const fs::path dir = fs::temp_directory_path() / ("lorax-gpu-rank-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto write_adapter = [&](int rank) {
    std::ofstream(dir / "adapter_config.json")
        << R"({"peft_type": "LORA", "r": )" << rank << R"(, "lora_alpha": 16, "target_modules": ["q_proj"]})";
    const std::string key = "base_model.model.model.layers.0.self_attn.q_proj.";
    testing::write_safetensors(dir / "adapter_model.safetensors",
                               {{key + "lora_A.weight", "F32", {rank, 16}}, {key + "lora_B.weight", "F32", {16, rank}}});
  };
  const int limit = backend->max_lora_rank();
  ASSERT_GT(limit, 0);
  write_adapter(limit);
  EXPECT_EQ(load_peft_adapter(dir.string(), "ok", spec, *backend).max_rank, limit);
  write_adapter(limit + 8);
  try {
    load_peft_adapter(dir.string(), "wide", spec, *backend);
    ADD_FAILURE() << "rank " << limit + 8 << " accepted";
  } catch (const AdapterError& e) {
    EXPECT_NE(std::string(e.what()).find("ranks up to " + std::to_string(limit)), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lorax
