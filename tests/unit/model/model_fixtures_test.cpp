// Every fixture model against transformers' float64 reference: prefill
// log-probs within 1e-3 and identical greedy tokens, solo and in mixed batches
// (one batch, chunked prefill, and a KV cache small enough to force preemption).
#include <gtest/gtest.h>

#include "fixture_reference.h"
#include "prefix_cache_check.h"

namespace lorax {
namespace {

using testing::Outcome;
using testing::Reference;
using testing::RunOptions;

constexpr double kLogprobTolerance = 1e-3;

void expect_matches(const Reference& ref, const std::vector<Outcome>& got, const std::string& mode) {
  SCOPED_TRACE(ref.name + " [" + mode + "]");
  EXPECT_LT(testing::max_logprob_error(ref, got), kLogprobTolerance);
  for (size_t i = 0; i < ref.cases.size(); ++i)
    EXPECT_EQ(got[i].tokens, ref.cases[i].greedy_ids) << "case " << i << ": " << ref.cases[i].prompt;
}

class ModelFixture : public ::testing::TestWithParam<std::filesystem::path> {};

TEST_P(ModelFixture, MatchesTransformers) {
  Reference ref = testing::read_reference(GetParam());
  auto backend = make_cpu_backend(0);
  auto model = Model::load(ref.dir.string(), *backend);
  RunOptions solo;
  solo.solo = true;
  expect_matches(ref, run_cases(*model, ref, solo), "solo");
  expect_matches(ref, run_cases(*model, ref, RunOptions{}), "one batch");
  RunOptions chunked;
  chunked.config.max_batch_prefill_tokens = 7;  // chunks prompts and mixes prefills with decodes
  expect_matches(ref, run_cases(*model, ref, chunked), "chunked prefill");
  // Room for little more than the longest sequence: preemption must happen.
  RunOptions tight;
  int longest = 0;
  for (auto& c : ref.cases) longest = std::max<int>(longest, c.input_ids.size() + ref.max_new_tokens);
  tight.kv_blocks = (longest + 3) / 4 + 2;
  EngineStats stats;
  expect_matches(ref, run_cases(*model, ref, tight, &stats), "preemption");
  EXPECT_GT(stats.preemptions, 0u);
}

TEST_P(ModelFixture, PrefixCachingChangesNothing) {
  Reference ref = testing::read_reference(GetParam());
  auto backend = make_cpu_backend(0);
  auto model = Model::load(ref.dir.string(), *backend);
  testing::expect_prefix_cache_transparent(*model, ref);
}

std::vector<std::filesystem::path> model_dirs() { return testing::reference_dirs("tests/fixtures/models"); }

INSTANTIATE_TEST_SUITE_P(Fixtures, ModelFixture, ::testing::ValuesIn(model_dirs()),
                         [](const auto& info) { return testing::fixture_param_name(info.param); });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ModelFixture);

TEST(ModelFixtures, FixturesArePresent) {
  EXPECT_GE(model_dirs().size(), 8u) << "run scripts/make-fixtures.py on the GPU machine";
}

// The trained demo model shipped in models/demo against its float64 reference
// (scripts/make-demo-reference.py): license-style prompts, 24-token continuations.
TEST(DemoModel, MatchesTransformers) {
  Reference ref = testing::read_reference("tests/fixtures/demo");
  auto backend = make_cpu_backend(0);
  auto model = Model::load("models/demo", *backend);
  expect_matches(ref, run_cases(*model, ref, RunOptions{}), "one batch");
}

}  // namespace
}  // namespace lorax
