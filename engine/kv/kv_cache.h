// Paged KV cache: one pool of fixed-size blocks per layer (tensors owned by the
// backend) and a reference-counted block allocator shared by all layers, so a
// block id means the same token range in every layer.
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/backend.h"

namespace lorax {

class BlockAllocator {
 public:
  explicit BlockAllocator(int num_blocks);
  int num_blocks() const { return static_cast<int>(ref_counts_.size()); }
  int num_free() const { return static_cast<int>(free_.size()); }
  bool can_allocate(int n) const { return num_free() >= n; }
  // Throws std::runtime_error when the pool is exhausted; callers check first.
  int32_t allocate();
  void retain(int32_t block);
  void release(int32_t block);
  int ref_count(int32_t block) const { return ref_counts_.at(block); }

 private:
  std::vector<int> ref_counts_;
  std::vector<int32_t> free_;
};

class KvCache {
 public:
  KvCache(Backend& backend, int num_layers, int num_blocks, int block_size, int num_kv_heads, int head_dim);
  int block_size() const { return block_size_; }
  BlockAllocator& allocator() { return allocator_; }
  const BlockAllocator& allocator() const { return allocator_; }
  KvLayer& layer(int i) { return layers_.at(i); }
  double usage_ratio() const {
    return 1.0 - static_cast<double>(allocator_.num_free()) / allocator_.num_blocks();
  }
  static int blocks_for_tokens(int tokens, int block_size) { return (tokens + block_size - 1) / block_size; }
  // Never reused within a process, unlike addresses: recorded graphs that read this cache key on it.
  uint64_t uid() const { return uid_; }

 private:
  uint64_t uid_;
  int block_size_;
  BlockAllocator allocator_;
  std::vector<KvLayer> layers_;
};

}  // namespace lorax
