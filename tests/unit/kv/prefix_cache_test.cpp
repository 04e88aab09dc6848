// The prefix cache over the block allocator: exact chains (adapter, parent and
// tokens all part of a key), the longest match, duplicates, and LRU reclaim of
// unreferenced cached blocks from the least recently released.
#include <gtest/gtest.h>

#include <vector>

#include "kv/prefix_cache.h"

namespace lorax {
namespace {

constexpr int kBlockSize = 2;

struct PrefixCacheTest : ::testing::Test {
  BlockAllocator allocator{8};
  PrefixCache cache{allocator, kBlockSize};

  // A sequence that computed `tokens` into freshly allocated blocks and published them.
  std::vector<int32_t> compute(uint64_t adapter, const std::vector<int32_t>& tokens) {
    std::vector<int32_t> blocks;
    for (size_t i = 0; i < (tokens.size() + kBlockSize - 1) / kBlockSize; ++i) blocks.push_back(allocator.allocate());
    PrefixChain chain;
    cache.publish(adapter, tokens, blocks, static_cast<int>(tokens.size()) / kBlockSize, chain);
    return blocks;
  }
  void release(const std::vector<int32_t>& blocks) {
    for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) allocator.release(*it);
  }
};

TEST_F(PrefixCacheTest, MatchesTheLongestCachedChainAndRetainsIt) {
  const auto blocks = compute(7, {1, 2, 3, 4, 5, 6, 9});  // three full blocks and a partial one
  EXPECT_EQ(cache.cached_blocks(), 3);
  release(blocks);
  EXPECT_EQ(allocator.num_free(), 8);  // cached, unreferenced blocks are still allocatable
  EXPECT_EQ(allocator.num_unreferenced_cached(), 3);

  PrefixCache::Match m = cache.match(7, std::vector<int32_t>{1, 2, 3, 4, 8, 8}, 10);
  ASSERT_EQ(m.blocks.size(), 2u);
  EXPECT_EQ(m.blocks[0], blocks[0]);
  EXPECT_EQ(m.blocks[1], blocks[1]);
  EXPECT_EQ(m.chain.blocks, 2);
  EXPECT_EQ(allocator.ref_count(blocks[0]), 1);
  EXPECT_EQ(allocator.num_unreferenced_cached(), 1);
  release(m.blocks);

  EXPECT_EQ(cache.match(7, std::vector<int32_t>{1, 2, 3, 4, 5, 6}, 1).blocks.size(), 1u) << "max_blocks caps it";
  release({blocks[0]});
  EXPECT_EQ(cache.match(7, std::vector<int32_t>{1}, 10).blocks.size(), 0u) << "only full blocks match";
}

TEST_F(PrefixCacheTest, AdapterAndParentArePartOfTheKey) {
  release(compute(7, {1, 2, 3, 4}));
  EXPECT_TRUE(cache.match(8, std::vector<int32_t>{1, 2, 3, 4}, 10).blocks.empty()) << "another adapter's K/V";
  EXPECT_TRUE(cache.match(0, std::vector<int32_t>{1, 2, 3, 4}, 10).blocks.empty()) << "the base model's K/V";
  // The second block's tokens behind another first block: other K/V.
  EXPECT_TRUE(cache.match(7, std::vector<int32_t>{9, 9, 3, 4}, 10).blocks.empty());
  PrefixCache::Match m = cache.match(7, std::vector<int32_t>{1, 2, 9, 9}, 10);
  EXPECT_EQ(m.blocks.size(), 1u);
  release(m.blocks);
}

TEST_F(PrefixCacheTest, ATwiceComputedBlockIsKeptOnceAndChainedThrough) {
  const auto first = compute(7, {1, 2, 3, 4});
  const auto second = compute(7, {1, 2, 3, 4, 5, 6});  // computed at the same time, before any match
  EXPECT_EQ(cache.cached_blocks(), 3);  // [1,2], [3,4] once each, and [5,6] chained behind the first copy
  release(first);
  release(second);
  EXPECT_EQ(allocator.num_unreferenced_cached(), 3);
  EXPECT_EQ(allocator.num_free(), 8);
  PrefixCache::Match m = cache.match(7, std::vector<int32_t>{1, 2, 3, 4, 5, 6, 0}, 10);
  ASSERT_EQ(m.blocks.size(), 3u);
  EXPECT_EQ(m.blocks[0], first[0]);
  EXPECT_EQ(m.blocks[1], first[1]);
  EXPECT_EQ(m.blocks[2], second[2]);
  release(m.blocks);
}

TEST_F(PrefixCacheTest, ReclaimsTheLeastRecentlyReleasedBlockFirst) {
  const auto a = compute(1, {1, 2, 3, 4});  // blocks released tail first: a[1], then a[0]
  const auto b = compute(2, {1, 2, 3, 4});
  release(a);
  release(b);
  std::vector<int32_t> held;
  for (int i = 0; i < 4; ++i) held.push_back(allocator.allocate());  // the four never-cached blocks
  EXPECT_EQ(cache.cached_blocks(), 4);
  held.push_back(allocator.allocate());
  EXPECT_EQ(held.back(), a[1]) << "the end of the oldest chain goes first";
  EXPECT_EQ(cache.cached_blocks(), 3);
  PrefixCache::Match m = cache.match(1, std::vector<int32_t>{1, 2, 3, 4, 0}, 10);
  EXPECT_EQ(m.blocks.size(), 1u) << "the chain now ends where its block was reclaimed";
  release(m.blocks);  // a[0] is now the most recently released
  held.push_back(allocator.allocate());
  EXPECT_EQ(held.back(), b[1]);
  held.push_back(allocator.allocate());
  EXPECT_EQ(held.back(), b[0]);
  held.push_back(allocator.allocate());
  EXPECT_EQ(held.back(), a[0]);
  EXPECT_EQ(cache.cached_blocks(), 0);
  EXPECT_FALSE(allocator.can_allocate(1));
  EXPECT_THROW(allocator.allocate(), std::runtime_error);
  release(held);
  EXPECT_EQ(allocator.num_free(), 8);
  EXPECT_EQ(allocator.num_unreferenced_cached(), 0);
}

TEST_F(PrefixCacheTest, ABlockThatIsStillReferencedIsNeverReclaimed) {
  const auto a = compute(1, {1, 2, 3, 4});
  std::vector<int32_t> held;
  while (allocator.can_allocate(1)) held.push_back(allocator.allocate());
  EXPECT_EQ(held.size(), 6u);
  EXPECT_EQ(cache.cached_blocks(), 2);
  release(held);
  release(a);
  EXPECT_THROW(allocator.release(a[0]), std::logic_error) << "double release";
}

}  // namespace
}  // namespace lorax
