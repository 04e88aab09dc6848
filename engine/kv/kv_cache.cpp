#include "kv/kv_cache.h"

#include <atomic>
#include <cmath>
#include <string>
#include <stdexcept>

namespace lorax {

BlockAllocator::BlockAllocator(int num_blocks)
    : ref_counts_(num_blocks > 0 ? num_blocks : 0, 0),
      cached_(num_blocks > 0 ? num_blocks : 0, false),
      lru_pos_(num_blocks > 0 ? num_blocks : 0) {
  if (num_blocks <= 0) throw std::invalid_argument("KV cache needs at least one block");
  free_.reserve(num_blocks);
  // Hand out low block ids first (pop from the back).
  for (int b = num_blocks - 1; b >= 0; --b) free_.push_back(b);
}

int32_t BlockAllocator::allocate() {
  int32_t b;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else if (!lru_.empty()) {
    b = lru_.front();
    lru_.pop_front();
    lru_pos_[b].reset();
    cached_[b] = false;
    if (on_evict_) on_evict_(b);
  } else {
    throw std::runtime_error("KV cache exhausted");
  }
  ref_counts_[b] = 1;
  return b;
}

void BlockAllocator::retain(int32_t block) {
  if (ref_counts_.at(block) == 0) {
    if (!lru_pos_[block]) throw std::logic_error("retain of a free KV block");
    lru_.erase(*lru_pos_[block]);
    lru_pos_[block].reset();
  }
  ++ref_counts_[block];
}

void BlockAllocator::release(int32_t block) {
  if (ref_counts_.at(block) <= 0) throw std::logic_error("double release of a KV block");
  if (--ref_counts_[block] > 0) return;
  if (cached_[block])
    lru_pos_[block] = lru_.insert(lru_.end(), block);
  else
    free_.push_back(block);
}

void BlockAllocator::set_cached(int32_t block) {
  if (ref_counts_.at(block) <= 0) throw std::logic_error("caching a free KV block");
  cached_[block] = true;
}

KvCache::KvCache(Backend& backend, int num_layers, int num_blocks, int block_size, int num_kv_heads, int head_dim,
                 std::optional<DType> dtype)
    : uid_([] {
        static std::atomic<uint64_t> next{1};
        return next++;
      }()),
      block_size_(block_size),
      dtype_(dtype.value_or(backend.compute_dtype())),
      allocator_(num_blocks) {
  const int64_t slots = static_cast<int64_t>(num_blocks) * block_size;
  for (int i = 0; i < num_layers; ++i) {
    KvLayer layer;
    layer.k = backend.empty_as({slots, num_kv_heads, head_dim}, dtype_);
    layer.v = backend.empty_as({slots, num_kv_heads, head_dim}, dtype_);
    layers_.push_back(std::move(layer));
  }
}

void KvCache::set_scales(const std::vector<std::pair<float, float>>& per_layer) {
  if (per_layer.size() != layers_.size())
    throw std::invalid_argument("KV scales for " + std::to_string(per_layer.size()) + " layers, the cache has " +
                                std::to_string(layers_.size()));
  for (size_t i = 0; i < layers_.size(); ++i) {
    const auto [k, v] = per_layer[i];
    if (!(k > 0 && std::isfinite(k)) || !(v > 0 && std::isfinite(v)))
      throw std::invalid_argument("KV scales of layer " + std::to_string(i) + " must be positive and finite");
    layers_[i].k_scale = k;
    layers_[i].v_scale = v;
  }
}

}  // namespace lorax
