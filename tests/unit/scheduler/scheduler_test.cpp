// The scheduler (Engine) driven through a fake backend and a fake adapter
// residency: preemption order, prefill token budgets and chunking, adapter
// rotation under --max-active-adapters, fairness, adapters made resident ahead of
// their turn and never evicted under a running request, the KV-full paths.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "scheduler_fixture.h"

namespace lorax {
namespace {

using testing::FakeBackend;
using testing::FakeResidency;
using testing::SchedulerTest;

TEST_F(SchedulerTest, PrefillBudgetChunksPromptsAndDecodesRideAlong) {
  EngineConfig cfg;
  cfg.max_batch_prefill_tokens = 8;
  make(64, cfg);
  submit(0, prompt(20, 0), 3);
  submit(1, prompt(5, 1), 3);
  run();
  // 20 prompt tokens in chunks of 8, 8, then 4 beside the second prompt's first 4 tokens.
  ASSERT_GE(backend.batches.size(), 3u);
  EXPECT_EQ(backend.batches[0].num_tokens(), 8);
  EXPECT_EQ(backend.batches[0].num_seqs(), 1);
  EXPECT_EQ(backend.batches[1].num_tokens(), 8);
  EXPECT_EQ(backend.batches[2].num_tokens(), 8);
  EXPECT_EQ(backend.batches[2].num_seqs(), 2);
  for (const ForwardBatch& b : backend.batches) {
    int prefill = 0;
    for (int s = 0; s < b.num_seqs(); ++s)
      if (b.cu_seqlens[s + 1] - b.cu_seqlens[s] > 1 || b.position_ids[b.cu_seqlens[s]] < 4) prefill += b.cu_seqlens[s + 1] - b.cu_seqlens[s];
    EXPECT_LE(prefill, cfg.max_batch_prefill_tokens);
  }
  EXPECT_EQ(done[0].tokens, expected(prompt(20, 0), 3));
  EXPECT_EQ(done[1].tokens, expected(prompt(5, 1), 3));
}

TEST_F(SchedulerTest, KvShortagePreemptsTheNewestAndLosesNothing) {
  // 12 blocks of 4 tokens: four requests of 6 + 10 tokens cannot all hold their KV at once.
  make(12);
  for (int i = 0; i < 4; ++i) submit(i, prompt(6, i), 10);
  run();
  EXPECT_GT(engine->stats().preemptions, 0u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(done[i].reason, FinishReason::Length);
    EXPECT_EQ(done[i].tokens, expected(prompt(6, i), 10)) << "request " << i;
  }
  // The oldest request is never the one preempted: it runs to its end without recomputation.
  int first_recomputed_by = -1;
  for (size_t b = 1; b < backend.batches.size() && first_recomputed_by < 0; ++b)
    for (int s = 0; s < backend.batches[b].num_seqs(); ++s)
      if (backend.batches[b].position_ids[backend.batches[b].cu_seqlens[s]] == 0 &&
          backend.batches[b].input_ids[backend.batches[b].cu_seqlens[s]] == prompt(6, 0)[0])
        first_recomputed_by = static_cast<int>(b);
  EXPECT_LT(first_recomputed_by, 0) << "the oldest request was preempted";
  EXPECT_EQ(kv->allocator().num_free(), 12);
}

TEST_F(SchedulerTest, KvFullPathsRefuseOrFailClearly) {
  make(4);  // 16 tokens
  EXPECT_THROW(submit(0, prompt(10, 0), 10), std::invalid_argument);
  submit(1, prompt(10, 1), 6);
  run();
  EXPECT_EQ(done[1].reason, FinishReason::Length);
  EXPECT_EQ(kv->allocator().num_free(), 4);
}

TEST_F(SchedulerTest, RotationCapsDistinctAdaptersAndStarvesNoOne) {
  EngineConfig cfg;
  cfg.max_active_adapters = 2;
  cfg.adapter_cycle_time_s = 0;
  FakeResidency res(8, 0);
  make(256, cfg, &res);
  // A busy adapter keeps arriving; three others wait for their turn.
  submit(100, prompt(4, 100), 12, "rare-1");
  submit(101, prompt(4, 101), 12, "rare-2");
  submit(102, prompt(4, 102), 12, "rare-3");
  int key = 0;
  while (steps < 300 && !(done[100].finished && done[101].finished && done[102].finished)) {
    if (steps % 2 == 0) {
      submit(key, prompt(4, key), 4, "busy");
      ++key;
    }
    step();
  }
  for (int k : {100, 101, 102}) {
    ASSERT_TRUE(done[k].finished) << "adapter request " << k << " starved";
    EXPECT_EQ(done[k].tokens, expected(prompt(4, k), 12));
  }
  EXPECT_LE(*distinct_adapters_per_batch_max().rbegin(), 2);
  EXPECT_LE(engine->stats().max_adapters_in_batch, 2);
  run();
}

TEST_F(SchedulerTest, AdaptersAreMadeResidentAheadOfTheirTurn) {
  EngineConfig cfg;
  cfg.max_active_adapters = 1;
  cfg.adapter_cycle_time_s = 1e9;  // a adapter admits until its queue drains
  FakeResidency res(2, 3);         // two slots; a copy takes three scheduler steps
  make(256, cfg, &res);
  submit(0, prompt(4, 0), 20, "a");
  submit(1, prompt(4, 1), 4, "b");
  run();
  ASSERT_TRUE(done[0].finished && done[1].finished);
  // b was copied while a ran: it starts the step after a finishes, not three steps later.
  int a_last_step = done[0].first_token_step + 19;
  EXPECT_LE(done[1].first_token_step, a_last_step + 1);
  EXPECT_TRUE(res.resident("b"));
  EXPECT_TRUE(res.evicted_in_use.empty());
  EXPECT_EQ(done[1].tokens, expected(prompt(4, 1), 4));
}

TEST_F(SchedulerTest, NoRunningRequestsAdapterIsEvicted) {
  EngineConfig cfg;
  cfg.adapter_cycle_time_s = 0;
  FakeResidency res(3, 2);
  make(512, cfg, &res);
  std::mt19937 rng(7);
  int key = 0;
  std::map<int, std::pair<std::vector<int32_t>, int>> asked;
  while (steps < 3000 && (key < 120 || !engine->idle())) {
    for (int i = 0; key < 120 && i < 2; ++i) {
      const int len = 2 + static_cast<int>(rng() % 6), max_new = 1 + static_cast<int>(rng() % 8);
      asked[key] = {prompt(len, key), max_new};
      submit(key, prompt(len, key), max_new, rng() % 4 == 0 ? "" : "ad-" + std::to_string(rng() % 9));
      ++key;
    }
    step();
  }
  ASSERT_TRUE(engine->idle());
  EXPECT_TRUE(res.evicted_in_use.empty()) << "evicted under a running request: " << res.evicted_in_use[0];
  EXPECT_FALSE(res.evictions.empty()) << "nine adapters in three slots must evict";
  EXPECT_LE(*distinct_adapters_per_batch_max().rbegin(), 3);
  for (auto& [k, want] : asked) EXPECT_EQ(done[k].tokens, expected(want.first, want.second)) << "request " << k;
}

TEST_F(SchedulerTest, AnAdapterThatCannotBeMadeResidentFailsOnlyItsRequests) {
  FakeResidency res(2, 0);
  res.failing = {"broken"};
  make(64, {}, &res);
  submit(0, prompt(4, 0), 5, "broken");
  submit(1, prompt(4, 1), 5, "fine");
  submit(2, prompt(4, 2), 5);
  run();
  EXPECT_EQ(done[0].reason, FinishReason::Error);
  EXPECT_NE(done[0].error.find("broken"), std::string::npos);
  EXPECT_EQ(done[1].tokens, expected(prompt(4, 1), 5));
  EXPECT_EQ(done[2].tokens, expected(prompt(4, 2), 5));
}

TEST_F(SchedulerTest, RequestsWaitForAPendingAdapterWhileOthersRun) {
  FakeResidency res(2, 6);
  make(64, {}, &res);
  submit(0, prompt(4, 0), 3, "slow");
  submit(1, prompt(4, 1), 3);
  step();
  EXPECT_TRUE(engine->waiting_for_adapters());
  run();
  // The base request ran at once, the adapter's after its copy.
  EXPECT_EQ(done[1].first_token_step, 0);
  EXPECT_GE(done[0].first_token_step, 5);
  EXPECT_EQ(done[0].tokens, expected(prompt(4, 0), 3));
  // run_until_idle waits for a copy in flight instead of giving up.
  submit(2, prompt(4, 2), 2, "slow-too");
  engine->run_until_idle();
  EXPECT_TRUE(done[2].finished);
}

}  // namespace
}  // namespace lorax
