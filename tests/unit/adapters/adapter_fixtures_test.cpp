// Every fixture PEFT adapter against peft's float64 reference (prefill log-probs
// within 1e-3, identical greedy tokens), alone and all together in one batch
// with the base model, plus the refused ones (corrupt, wrong base).
#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "adapters/peft_adapter.h"
#include "fixture_reference.h"
#include "prefix_cache_check.h"

namespace lorax {
namespace {

namespace fs = std::filesystem;
using testing::Reference;
using testing::RunOptions;

fs::path base_model_dir(const fs::path& adapter_dir) {
  return fs::path("tests/fixtures/models") / adapter_dir.parent_path().filename();
}

using testing::adapter_dirs;

class AdapterFixture : public ::testing::TestWithParam<fs::path> {};

TEST_P(AdapterFixture, MatchesPeft) {
  Reference ref = testing::read_reference(GetParam());
  auto backend = make_cpu_backend(0);
  auto model = Model::load(base_model_dir(GetParam()).string(), *backend);
  std::vector<std::string> warnings;
  RunOptions opt;
  opt.adapter = std::make_shared<AdapterWeights>(
      load_peft_adapter(GetParam().string(), ref.name, model->spec(), *backend, &warnings));
  auto got = run_cases(*model, ref, opt);
  EXPECT_LT(testing::max_logprob_error(ref, got), 1e-3);
  for (size_t i = 0; i < ref.cases.size(); ++i)
    EXPECT_EQ(got[i].tokens, ref.cases[i].greedy_ids) << "case " << i << ": " << ref.cases[i].prompt;
}

TEST_P(AdapterFixture, PrefixCachingChangesNothing) {
  Reference ref = testing::read_reference(GetParam());
  auto backend = make_cpu_backend(0);
  auto model = Model::load(base_model_dir(GetParam()).string(), *backend);
  auto adapter = std::make_shared<AdapterWeights>(load_peft_adapter(GetParam().string(), ref.name, model->spec(), *backend));
  testing::expect_prefix_cache_transparent(*model, ref, adapter);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, AdapterFixture, ::testing::ValuesIn(adapter_dirs()),
                         [](const auto& info) { return testing::fixture_param_name(info.param); });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(AdapterFixture);

// All adapters of each base model plus the base model itself, every case of
// each, submitted together: one engine, shared batches, each request its own result.
TEST(AdapterFixtures, MixedBatchesMatchSoloResults) {
  std::map<fs::path, std::vector<fs::path>> by_model;
  for (auto& d : adapter_dirs()) by_model[base_model_dir(d)].push_back(d);
  ASSERT_FALSE(by_model.empty()) << "no adapter fixtures";
  for (auto& [model_dir, adapters] : by_model) {
    SCOPED_TRACE(model_dir.string());
    auto backend = make_cpu_backend(0);
    auto model = Model::load(model_dir.string(), *backend);
    struct Job {
      Reference ref;
      std::shared_ptr<const AdapterWeights> adapter;
    };
    std::vector<Job> jobs;
    jobs.push_back({testing::read_reference(model_dir), nullptr});
    for (auto& a : adapters) {
      Reference ref = testing::read_reference(a);
      jobs.push_back({ref, std::make_shared<AdapterWeights>(load_peft_adapter(a.string(), ref.name, model->spec(), *backend))});
    }
    KvCache kv(*backend, model->spec().num_layers, 512, 4, model->spec().num_kv_heads, model->spec().head_dim);
    Engine engine(*model, kv, nullptr);
    std::vector<std::vector<int32_t>> got;
    std::vector<const std::vector<int32_t>*> want;
    std::vector<std::string> labels;
    for (auto& job : jobs)
      for (auto& c : job.ref.cases) {
        GenerationRequest req;
        req.prompt_ids = c.input_ids;
        req.stopping.max_new_tokens = job.ref.max_new_tokens;
        req.stopping.ignore_eos_token = true;
        req.adapter = job.adapter;
        req.adapter_id = job.adapter ? job.adapter->id : "";
        size_t slot = got.size();
        got.emplace_back();
        want.push_back(&c.greedy_ids);
        labels.push_back(job.ref.name + ": " + c.prompt);
        req.on_finish = [&got, slot](const FinishInfo& info) {
          for (auto& t : info.tokens) got[slot].push_back(t.id);
        };
        engine.submit(std::move(req));
      }
    engine.run_until_idle();
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], *want[i]) << labels[i];
    EXPECT_GE(engine.stats().max_adapters_in_batch, static_cast<int>(adapters.size()))
        << "adapters did not share a batch";
  }
}

TEST(AdapterFixtures, BadAdaptersAreRefused) {
  auto backend = make_cpu_backend(1);
  const fs::path bad("tests/fixtures/adapters/bad");
  ASSERT_TRUE(fs::exists(bad));
  int checked = 0;
  for (auto& entry : fs::directory_iterator(bad)) {
    if (!entry.is_directory()) continue;
    // Each bad adapter names its intended base model in base_model.txt.
    std::ifstream base_file(entry.path() / "base_model.txt");
    std::string base;
    std::getline(base_file, base);
    auto model = Model::load(("tests/fixtures/models/" + (base.empty() ? std::string("llama") : base)), *backend);
    EXPECT_THROW(load_peft_adapter(entry.path().string(), "bad", model->spec(), *backend), AdapterError)
        << entry.path();
    ++checked;
  }
  EXPECT_GE(checked, 2);
}

TEST(AdapterLoading, PickledAndMissingAreRefusedClearly) {
  const fs::path dir = fs::temp_directory_path() / ("lorax-adapter-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "adapter_config.json") << R"({"peft_type": "LORA", "r": 4, "lora_alpha": 8})";
  std::ofstream(dir / "adapter_model.bin") << "pickle";
  ModelSpec spec = parse_model_spec(R"({"model_type":"llama","vocab_size":32,"hidden_size":16,"num_hidden_layers":1,
      "num_attention_heads":2,"intermediate_size":24})", "config.json");
  auto backend = make_cpu_backend(1);
  try {
    load_peft_adapter(dir.string(), "x", spec, *backend);
    FAIL() << "pickled adapter accepted";
  } catch (const AdapterError& e) {
    EXPECT_NE(std::string(e.what()).find("pickled"), std::string::npos) << e.what();
  }
  std::ofstream(dir / "adapter_config.json") << R"({"peft_type": "LORA", "r": 4, "use_dora": true})";
  EXPECT_THROW(load_peft_adapter(dir.string(), "x", spec, *backend), AdapterError);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lorax
