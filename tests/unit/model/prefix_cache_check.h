// Prefix caching must change nothing: the same prompts give the same tokens and
// log-probs with the cache on and off. Shared by the model and adapter fixture tests.
#pragma once
#include <gtest/gtest.h>

#include "fixture_reference.h"

namespace lorax::testing {

// The cache-off run is the one the fixture tests hold to transformers/peft; the
// cache-on runs differ from it only by the order of float additions in a
// prefill split at a block boundary (BLAS kernels block a GEMM by its row
// count; gemma2's soft-capped logits showed 1.9e-5), ten times below the 1e-3
// bar against the references.
constexpr double kPrefixCacheTolerance = 1e-4;
// Preemption alone, with the cache off, moves gemma2 adapter log-probs by up to
// 1.2e-4 (a recomputation is one prefill where the first pass was decode steps).
constexpr double kPreemptionTolerance = 5e-4;

// Prompts sharing 0, 1 and many blocks (sharing_prompts), run twice through one
// engine with the cache (the second round reuses the first's blocks), with and
// without prompt log-probs (a request asking for them reuses nothing but still
// publishes), and under a KV cache so small that cached blocks are evicted and
// requests preempted.
inline void expect_prefix_cache_transparent(Model& model, const Reference& ref,
                                            std::shared_ptr<const AdapterWeights> adapter = nullptr) {
  for (bool details : {true, false}) {
    SCOPED_TRACE(std::string("prompt log-probs ") + (details ? "on" : "off"));
    RunOptions off;
    off.adapter = adapter;
    off.prefill_details = details;
    off.config.prefix_caching = false;
    const auto prompts = sharing_prompts(ref, off.block_size);
    const auto want = run_prompts(model, prompts, ref.max_new_tokens, off);

    RunOptions on = off;
    on.config.prefix_caching = true;
    on.rounds = 2;
    // Room for both rounds at once, so that nothing the second round reuses is evicted.
    for (auto& p : prompts) on.kv_blocks += 2 * ((p.size() + ref.max_new_tokens) / on.block_size + 2);
    EngineStats stats;
    const auto got = run_prompts(model, prompts, ref.max_new_tokens, on, &stats);
    EXPECT_LT(max_outcome_difference(want, got), kPrefixCacheTolerance);
    // The second round reuses every full block before each prompt's last token
    // (none with prompt log-probs on).
    uint64_t reusable = 0;
    for (auto& p : prompts) reusable += (p.size() - 1) / on.block_size * on.block_size;
    int cached = 0;
    for (auto& o : got) cached += o.cached_tokens;
    if (details) {
      EXPECT_EQ(stats.prefix_hits, 0u);
      EXPECT_EQ(cached, 0);
    } else {
      EXPECT_GE(stats.prefix_hits, reusable);
      EXPECT_GE(cached, static_cast<int>(reusable));
    }

    // Room for the longest sequence and a little more: blocks are evicted and requests preempted.
    RunOptions tight = on;
    tight.kv_blocks = 0;
    int longest = 0;
    for (auto& p : prompts) longest = std::max<int>(longest, p.size() + ref.max_new_tokens);
    tight.kv_blocks = (longest + tight.block_size - 1) / tight.block_size + 2;
    EngineStats tight_stats;
    const auto squeezed = run_prompts(model, prompts, ref.max_new_tokens, tight, &tight_stats);
    EXPECT_LT(max_outcome_difference(want, squeezed), kPreemptionTolerance);
    EXPECT_GT(tight_stats.preemptions, 0u);
    if (!details) {
      EXPECT_GT(tight_stats.prefix_hits, 0u);
    }
  }
}

}  // namespace lorax::testing
