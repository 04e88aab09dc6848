// Paged KV cache: one pool of fixed-size blocks per layer (tensors owned by the
// backend) and a reference-counted block allocator shared by all layers, so a
// block id means the same token range in every layer.
#pragma once
#include <cstdint>
#include <functional>
#include <list>
#include <optional>
#include <vector>

#include "runtime/backend.h"

namespace lorax {

// Blocks are free, referenced, or (prefix caching) cached: unreferenced but
// still holding K/V that a later request may reuse. Cached blocks count as free
// space; the allocator hands out truly free blocks first and then reclaims the
// cached block released longest ago, telling the prefix cache through on_evict.
class BlockAllocator {
 public:
  explicit BlockAllocator(int num_blocks);
  int num_blocks() const { return static_cast<int>(ref_counts_.size()); }
  // Blocks an allocate() can hand out: free ones and unreferenced cached ones.
  int num_free() const { return static_cast<int>(free_.size() + lru_.size()); }
  int num_unreferenced_cached() const { return static_cast<int>(lru_.size()); }
  bool can_allocate(int n) const { return num_free() >= n; }
  // Throws std::runtime_error when the pool is exhausted; callers check first.
  int32_t allocate();
  // Adds a reference; an unreferenced cached block is taken back from the LRU.
  void retain(int32_t block);
  void release(int32_t block);
  int ref_count(int32_t block) const { return ref_counts_.at(block); }

  // Prefix caching: a cached block keeps its contents once released.
  void set_cached(int32_t block);
  bool cached(int32_t block) const { return cached_.at(block); }
  // Called when a cached block is about to be reused for other contents.
  void set_on_evict(std::function<void(int32_t)> f) { on_evict_ = std::move(f); }

 private:
  std::vector<int> ref_counts_;
  std::vector<int32_t> free_;
  std::vector<bool> cached_;
  std::list<int32_t> lru_;  // unreferenced cached blocks, least recently released first
  std::vector<std::optional<std::list<int32_t>::iterator>> lru_pos_;
  std::function<void(int32_t)> on_evict_;
};

class KvCache {
 public:
  // `dtype`: the backend's compute dtype unless given (DType::F8E4M3: --kv-cache-dtype fp8).
  KvCache(Backend& backend, int num_layers, int num_blocks, int block_size, int num_kv_heads, int head_dim,
          std::optional<DType> dtype = std::nullopt);
  DType dtype() const { return dtype_; }
  // FP8 scales of each layer (k, v); 1.0 until set.
  void set_scales(const std::vector<std::pair<float, float>>& per_layer);
  int block_size() const { return block_size_; }
  BlockAllocator& allocator() { return allocator_; }
  const BlockAllocator& allocator() const { return allocator_; }
  KvLayer& layer(int i) { return layers_.at(i); }
  // Blocks held by sequences (cached blocks nobody references count as free).
  double usage_ratio() const {
    return 1.0 - static_cast<double>(allocator_.num_free()) / allocator_.num_blocks();
  }
  static int blocks_for_tokens(int tokens, int block_size) { return (tokens + block_size - 1) / block_size; }
  // Never reused within a process, unlike addresses: recorded graphs that read this cache key on it.
  uint64_t uid() const { return uid_; }

 private:
  uint64_t uid_;
  int block_size_;
  DType dtype_;
  BlockAllocator allocator_;
  std::vector<KvLayer> layers_;
};

}  // namespace lorax
