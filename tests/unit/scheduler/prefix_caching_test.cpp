// Prefix caching in the scheduler: a repeated prompt computes only its tail,
// on the blocks the first request left, and its answer is unchanged; adapters
// never share K/V; prompt log-probs and --prefix-caching off compute everything;
// cached blocks give way to new requests when the KV cache is full.
#include <gtest/gtest.h>

#include "scheduler_fixture.h"

namespace lorax {
namespace {

using testing::FakeResidency;
using testing::SchedulerTest;

struct PrefixCachingTest : SchedulerTest {
  // The first forward batch after `from` that holds a sequence starting with
  // `first_token`: how many of its tokens were computed, from which position.
  struct Prefill {
    int tokens = -1, first_position = -1;
    std::vector<int32_t> blocks;
  };
  Prefill prefill_of(size_t from, int32_t last_prompt_token) const {
    for (size_t b = from; b < backend.batches.size(); ++b) {
      const ForwardBatch& fb = backend.batches[b];
      for (int s = 0; s < fb.num_seqs(); ++s) {
        const int begin = fb.cu_seqlens[s], end = fb.cu_seqlens[s + 1];
        if (end - begin < 1 || fb.input_ids[end - 1] != last_prompt_token) continue;
        Prefill p{end - begin, fb.position_ids[begin], {}};
        for (int i = 0; i < fb.max_blocks; ++i) p.blocks.push_back(fb.block_tables[s * fb.max_blocks + i]);
        return p;
      }
    }
    return {};
  }
};

TEST_F(PrefixCachingTest, ARepeatedPromptComputesOnlyItsTailOnTheSameBlocks) {
  make(64);                        // blocks of 4 tokens
  const auto p = prompt(18, 3);    // four full blocks before the last token's block
  submit(0, p, 3);
  run();
  const size_t second = backend.batches.size();
  submit(1, p, 3);
  run();
  const Prefill first_run = prefill_of(0, p.back()), second_run = prefill_of(second, p.back());
  EXPECT_EQ(first_run.tokens, 18);
  EXPECT_EQ(second_run.tokens, 2);
  EXPECT_EQ(second_run.first_position, 16);
  ASSERT_GE(second_run.blocks.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(second_run.blocks[i], first_run.blocks[i]) << "block " << i;
  EXPECT_EQ(done[1].tokens, expected(p, 3));
  EXPECT_EQ(done[0].cached_tokens, 0);
  EXPECT_EQ(done[1].cached_tokens, 16);
  EXPECT_EQ(engine->stats().prefix_hits, 16u);
  EXPECT_EQ(engine->stats().prefix_queries, 36u);
}

TEST_F(PrefixCachingTest, APromptExtendingACachedOneReusesItsBlocksEvenWhenTheyWereItsLast) {
  make(64);
  const auto p = prompt(8, 5);  // exactly two blocks, both computed and published by the first request
  submit(0, p, 1);
  run();
  auto longer = p;
  for (int i = 0; i < 9; ++i) longer.push_back(i);
  const size_t second = backend.batches.size();
  submit(1, longer, 2);
  run();
  // Both prompt blocks were published when the first request ended, and 17 > 8 tokens: both reused.
  EXPECT_EQ(prefill_of(second, longer.back()).tokens, 9);
  EXPECT_EQ(done[1].tokens, expected(longer, 2));
}

TEST_F(PrefixCachingTest, AdaptersNeverShareKv) {
  FakeResidency residency(4, 0);
  make(64, {}, &residency);
  const auto p = prompt(18, 4);
  submit(0, p, 2, "a");
  run();
  size_t from = backend.batches.size();
  submit(1, p, 2, "b");
  run();
  EXPECT_EQ(prefill_of(from, p.back()).tokens, 18) << "adapter b reused adapter a's K/V";
  from = backend.batches.size();
  submit(2, p, 2);
  run();
  EXPECT_EQ(prefill_of(from, p.back()).tokens, 18) << "the base model reused an adapter's K/V";
  from = backend.batches.size();
  submit(3, p, 2, "a");
  run();
  EXPECT_EQ(prefill_of(from, p.back()).tokens, 2);
  EXPECT_EQ(done[3].cached_tokens, 16);
}

TEST_F(PrefixCachingTest, PromptLogProbsAndCachingOffComputeThePromptWhole) {
  make(64);
  const auto p = prompt(18, 6);
  submit(0, p, 2);
  run();
  size_t from = backend.batches.size();
  submit(1, p, 2, "", /*prefill_details=*/true);
  run();
  EXPECT_EQ(prefill_of(from, p.back()).tokens, 18);
  EXPECT_EQ(done[1].cached_tokens, 0);

  EngineConfig off;
  off.prefix_caching = false;
  make(64, off);
  backend.batches.clear();
  submit(2, p, 2);
  run();
  from = backend.batches.size();
  submit(3, p, 2);
  run();
  EXPECT_EQ(prefill_of(from, p.back()).tokens, 18);
  EXPECT_EQ(engine->stats().prefix_hits, 0u);
  EXPECT_EQ(engine->stats().prefix_cached_blocks, 0);
}

TEST_F(PrefixCachingTest, CachedBlocksGiveWayWhenTheKvCacheIsFull) {
  make(8);  // 32 tokens
  submit(0, prompt(20, 1), 4);
  run();
  EXPECT_GT(engine->stats().prefix_cached_blocks, 0);
  EXPECT_EQ(kv->allocator().num_free(), 8) << "unreferenced cached blocks count as free";
  // Another prompt needing every block: the cached ones are reclaimed, it is not refused or preempted.
  submit(1, prompt(28, 2), 4);
  run();
  EXPECT_EQ(done[1].reason, FinishReason::Length);
  EXPECT_EQ(done[1].tokens, expected(prompt(28, 2), 4));
  EXPECT_EQ(engine->stats().preemptions, 0u);
  // The first prompt's blocks are gone: it is computed again, whole.
  const size_t from = backend.batches.size();
  submit(2, prompt(20, 1), 4);
  run();
  EXPECT_EQ(prefill_of(from, prompt(20, 1).back()).tokens, 20);
  EXPECT_EQ(done[2].tokens, expected(prompt(20, 1), 4));
}

TEST_F(PrefixCachingTest, ConcurrentRequestsSharingASystemPromptAllAnswerCorrectly) {
  make(40);
  auto with_system = [](int user) {
    auto t = prompt(12, 9);  // a shared 12-token "system prompt"
    for (int i = 0; i < 5; ++i) t.push_back((user * 11 + i) % 90);
    return t;
  };
  submit(0, with_system(0), 6);
  run();
  for (int u = 1; u <= 6; ++u) submit(u, with_system(u), 6);
  run();
  for (int u = 0; u <= 6; ++u) EXPECT_EQ(done[u].tokens, expected(with_system(u), 6)) << "user " << u;
  for (int u = 1; u <= 6; ++u) EXPECT_EQ(done[u].cached_tokens, 12) << "user " << u;
  EXPECT_EQ(kv->allocator().num_free(), 40);
}

}  // namespace
}  // namespace lorax
