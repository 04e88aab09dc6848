#include "kv/prefix_cache.h"

#include <algorithm>

namespace lorax {

size_t PrefixCache::KeyHash::operator()(const Key& k) const {
  // FNV-1a over the key's words: the map verifies whole keys, so this only spreads them.
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](uint64_t v) {
    for (int i = 0; i < 8; ++i, v >>= 8) h = (h ^ (v & 0xff)) * 1099511628211ull;
  };
  mix(k.parent);
  mix(k.adapter);
  for (int32_t t : k.tokens) mix(static_cast<uint32_t>(t));
  return static_cast<size_t>(h);
}

PrefixCache::PrefixCache(BlockAllocator& allocator, int block_size)
    : allocator_(allocator), block_size_(block_size), entries_(allocator.num_blocks()) {
  allocator_.set_on_evict([this](int32_t b) { evict(b); });
}

PrefixCache::~PrefixCache() { allocator_.set_on_evict(nullptr); }

PrefixCache::Key PrefixCache::key_of(uint64_t parent, uint64_t adapter, std::span<const int32_t> tokens,
                                     int block) const {
  auto first = tokens.begin() + static_cast<ptrdiff_t>(block) * block_size_;
  return Key{parent, adapter, std::vector<int32_t>(first, first + block_size_)};
}

void PrefixCache::evict(int32_t block) {
  std::optional<Entry>& e = entries_.at(block);
  if (!e) return;
  by_key_.erase(e->key);
  e.reset();
}

PrefixCache::Match PrefixCache::match(uint64_t adapter, std::span<const int32_t> tokens, int max_blocks) {
  Match m;
  const int limit = std::min<int>(max_blocks, static_cast<int>(tokens.size()) / block_size_);
  for (int i = 0; i < limit; ++i) {
    auto it = by_key_.find(key_of(m.chain.tail, adapter, tokens, i));
    if (it == by_key_.end()) break;
    const Entry& e = *entries_[it->second];
    allocator_.retain(it->second);
    m.blocks.push_back(it->second);
    m.chain = {i + 1, e.uid};
  }
  return m;
}

void PrefixCache::publish(uint64_t adapter, std::span<const int32_t> tokens, std::span<const int32_t> blocks,
                          int full_blocks, PrefixChain& chain) {
  full_blocks = std::min<int>({full_blocks, static_cast<int>(blocks.size()),
                               static_cast<int>(tokens.size()) / block_size_});
  for (int i = chain.blocks; i < full_blocks; ++i) {
    Key key = key_of(chain.tail, adapter, tokens, i);
    auto it = by_key_.find(key);
    if (it != by_key_.end()) {  // computed twice (two requests at once): keep the first, chain through it
      chain = {i + 1, entries_[it->second]->uid};
      continue;
    }
    const int32_t b = blocks[i];
    if (entries_.at(b)) {  // already an entry (its own match): chain through it
      chain = {i + 1, entries_[b]->uid};
      continue;
    }
    const uint64_t uid = next_uid_++;
    by_key_.emplace(key, b);
    entries_[b] = Entry{std::move(key), uid};
    allocator_.set_cached(b);
    chain = {i + 1, uid};
  }
}

}  // namespace lorax
