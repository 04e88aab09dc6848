// Adapter merging (adapters/adapter_merge.h) against peft's add_weighted_adapter:
// for every case of tests/fixtures/merges/llama (scripts/make-merge-references.py)
// the merged A and B of every module equal peft's within 1e-4 (CPU fp32), and
// the merged adapter reproduces peft's float64 log-probs within 1e-3 and its
// greedy tokens. DARE below density 1 draws its own masks (not torch's): there
// the rule itself is checked, each element either dropped or the linear merge's
// value divided by the density, about `density` of them kept.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <tuple>

#include "adapters/adapter_merge.h"
#include "fixture_reference.h"

namespace lorax {
namespace {

namespace fs = std::filesystem;
const fs::path kSources = "tests/fixtures/adapters/llama";
const fs::path kMerges = "tests/fixtures/merges/llama";

std::vector<float> floats(const StagedAdapter& s, size_t offset, size_t n) {
  const float* p = reinterpret_cast<const float*>(static_cast<const uint8_t*>(s.host.get()) + offset);
  return std::vector<float>(p, p + n);
}

MergeSpec spec_of(const nlohmann::json& m) {
  MergeSpec spec;
  for (const auto& id : m.at("ids")) spec.adapters.push_back({id.get<std::string>(), "local", "", ""});
  spec.weights = m.at("weights").get<std::vector<double>>();
  spec.strategy = merge_strategy_named(m.at("merge_strategy"));
  spec.density = m.value("density", 1.0);
  spec.majority_sign = majority_sign_named(m.value("majority_sign_method", "total"));
  return spec;
}

struct MergeRig {
  std::unique_ptr<Backend> backend = make_cpu_backend(0);
  std::unique_ptr<Model> model = Model::load("tests/fixtures/models/llama", *backend);
  std::shared_ptr<const StagedAdapter> stage(const fs::path& dir, const std::string& id) {
    return std::make_shared<const StagedAdapter>(stage_peft_adapter(dir.string(), id, model->spec(), *backend));
  }
  StagedAdapter merge(const MergeSpec& spec) {
    std::vector<std::shared_ptr<const StagedAdapter>> sources;
    for (const AdapterRequest& a : spec.adapters) sources.push_back(stage(kSources / a.id, a.id));
    return merge_staged_adapters(sources, spec, spec.id(), *backend);
  }
};

std::vector<fs::path> merge_cases() {
  std::vector<fs::path> out = testing::reference_dirs(kMerges);
  return out;
}

class MergeCase : public ::testing::TestWithParam<fs::path> {};

TEST_P(MergeCase, EqualsPeft) {
  MergeRig s;
  std::ifstream in(GetParam() / "reference.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  const MergeSpec spec = spec_of(j.at("merge"));
  const StagedAdapter got = s.merge(spec);
  // peft's merged adapter as it saved it, staged the same way (scaling lora_alpha / r = 1).
  const auto want = s.stage(GetParam(), "peft");
  ASSERT_EQ(got.pieces.size(), want->pieces.size());
  auto key = [](const StagedAdapter::Piece& p) { return std::make_tuple(p.layer, p.projection, p.col_offset); };
  std::map<std::tuple<int, Projection, int64_t>, const StagedAdapter::Piece*> wanted;
  for (const auto& w : want->pieces) wanted[key(w)] = &w;
  for (size_t k = 0; k < got.pieces.size(); ++k) {
    const auto& g = got.pieces[k];
    ASSERT_TRUE(wanted.count(key(g))) << "module " << k << " is not in peft's merge";
    const auto& w = *wanted[key(g)];
    SCOPED_TRACE("module " + std::to_string(k) + " layer " + std::to_string(g.layer));
    ASSERT_EQ(std::make_tuple(g.layer, g.projection, g.col_offset, g.rank, g.in, g.out),
              std::make_tuple(w.layer, w.projection, w.col_offset, w.rank, w.in, w.out));
    EXPECT_FLOAT_EQ(g.scale, w.scale);
    const auto ga = floats(got, g.a_offset, g.rank * g.in);
    const auto wa = floats(*want, w.a_offset, w.rank * w.in);
    const auto gb = floats(got, g.b_offset, g.out * g.rank);
    const auto wb = floats(*want, w.b_offset, w.out * w.rank);
    for (size_t i = 0; i < ga.size(); ++i) ASSERT_NEAR(ga[i], wa[i], 1e-4) << "A[" << i << "]";
    for (size_t i = 0; i < gb.size(); ++i) ASSERT_NEAR(gb[i], wb[i], 1e-4) << "B[" << i << "]";
  }
  // Served: peft's log-probs and greedy tokens with the merged adapter applied.
  testing::Reference ref = testing::read_reference(GetParam());
  testing::RunOptions opt;
  opt.adapter = adapter_weights_view(got, got.host);
  auto results = run_cases(*s.model, ref, opt);
  EXPECT_LT(testing::max_logprob_error(ref, results), 1e-3);
  for (size_t i = 0; i < ref.cases.size(); ++i) EXPECT_EQ(results[i].tokens, ref.cases[i].greedy_ids) << "case " << i;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, MergeCase, ::testing::ValuesIn(merge_cases()),
                         [](const auto& info) { return testing::fixture_param_name(info.param); });

TEST(AdapterMerge, DareKeepsAboutDensityAndRescales) {
  MergeRig s;
  MergeSpec linear;
  linear.adapters = {{"merge-c", "local", "", ""}};
  linear.weights = {0.8};
  MergeSpec dare = linear;
  dare.strategy = MergeStrategy::DareLinear;
  dare.density = 0.4;
  const StagedAdapter l = s.merge(linear), d = s.merge(dare);
  size_t kept = 0, total = 0;
  for (size_t k = 0; k < l.pieces.size(); ++k) {
    const auto& p = l.pieces[k];
    for (auto [off_l, off_d, n] : {std::tuple{p.a_offset, d.pieces[k].a_offset, size_t(p.rank * p.in)},
                                   std::tuple{p.b_offset, d.pieces[k].b_offset, size_t(p.out * p.rank)}}) {
      const auto lv = floats(l, off_l, n), dv = floats(d, off_d, n);
      for (size_t i = 0; i < n; ++i) {
        ++total;
        if (dv[i] == 0.0f) continue;
        ++kept;
        ASSERT_NEAR(dv[i], lv[i] / 0.4, 1e-5 * std::max(1.0f, std::fabs(lv[i])));
      }
    }
  }
  EXPECT_NEAR(static_cast<double>(kept) / total, 0.4, 0.03) << kept << " of " << total;
  // The same parameters give the same adapter (it is cached and served by them).
  const StagedAdapter again = s.merge(dare);
  EXPECT_EQ(std::memcmp(again.host.get(), d.host.get(), d.bytes), 0);
  EXPECT_EQ(dare.id(), MergeSpec(dare).id());
  EXPECT_NE(dare.id(), linear.id());
}

TEST(AdapterMerge, BadSpecsAreClearErrors) {
  MergeRig s;
  MergeSpec spec;
  spec.adapters = {{"merge-a", "local", "", ""}, {"attn-r8", "local", "", ""}};
  spec.weights = {1.0};
  EXPECT_THROW(validate_merge(spec), AdapterError);  // one weight for two ids
  spec.weights = {1.0, 1.0};
  spec.density = 0.0;
  EXPECT_THROW(validate_merge(spec), AdapterError);
  spec.density = 1.0;
  try {  // rank 8 and rank 8 but different alpha is fine; merge-a (r 8) with all-r4-patterns (r 4) is not
    spec.adapters[1].id = "all-r4-patterns";
    s.merge(spec);
    FAIL() << "ranks differ";
  } catch (const AdapterError& e) {
    EXPECT_NE(std::string(e.what()).find("rank"), std::string::npos) << e.what();
  }
  EXPECT_THROW(merge_strategy_named("svd"), AdapterError);
  EXPECT_THROW(majority_sign_named("mean"), AdapterError);
}

}  // namespace
}  // namespace lorax
