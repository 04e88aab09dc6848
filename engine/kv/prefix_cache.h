// Prefix caching over the paged KV cache. A full block is keyed by the chain
// that leads to it: the adapter's identity, the block's token ids and the block
// before it (by that block's cache uid, which is never reused, so a key is exact:
// no hash collision can hand out another prefix's K/V). A new request reuses the
// longest chain of cached blocks that starts its tokens and computes only the
// rest. The allocator keeps unreferenced cached blocks reusable until it needs
// them and then reclaims the one released longest ago (on_evict drops its key).
//
// K/V at a position depend only on the tokens up to it and the adapter, so
// reuse is exact for every layer kind: sliding-window layers keep every block
// too and mask by position when they read.
//
// A request that asks for prompt log-probs (decoder_input_details) reuses
// nothing: the log-prob of the token after a reused block needs logits at that
// block's last position, which a reuse never computes. It still publishes its
// blocks for others (vLLM makes the same choice).
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "kv/kv_cache.h"

namespace lorax {

// How far a sequence's blocks are published: `blocks` full blocks, the last of
// them (or an identical cached one) being cache entry `tail`.
struct PrefixChain {
  int blocks = 0;
  uint64_t tail = 0;  // 0: the root
};

class PrefixCache {
 public:
  // Registers on_evict with the allocator, for as long as the cache lives.
  PrefixCache(BlockAllocator& allocator, int block_size);
  ~PrefixCache();
  PrefixCache(const PrefixCache&) = delete;
  PrefixCache& operator=(const PrefixCache&) = delete;

  struct Match {
    std::vector<int32_t> blocks;  // retained for the caller
    PrefixChain chain;
  };
  // The longest cached chain that starts `tokens`, at most `max_blocks` blocks.
  Match match(uint64_t adapter, std::span<const int32_t> tokens, int max_blocks);

  // Publishes full blocks [chain.blocks, full_blocks) of a sequence (block i
  // holds tokens [i*bs, (i+1)*bs) of `tokens`) and advances `chain`.
  void publish(uint64_t adapter, std::span<const int32_t> tokens, std::span<const int32_t> blocks,
               int full_blocks, PrefixChain& chain);

  int cached_blocks() const { return static_cast<int>(by_key_.size()); }
  int block_size() const { return block_size_; }

 private:
  struct Key {
    uint64_t parent = 0, adapter = 0;
    std::vector<int32_t> tokens;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const;
  };
  struct Entry {
    Key key;
    uint64_t uid = 0;
  };
  Key key_of(uint64_t parent, uint64_t adapter, std::span<const int32_t> tokens, int block) const;
  void evict(int32_t block);

  BlockAllocator& allocator_;
  int block_size_;
  uint64_t next_uid_ = 1;
  std::unordered_map<Key, int32_t, KeyHash> by_key_;
  std::vector<std::optional<Entry>> entries_;  // by block id
};

}  // namespace lorax
