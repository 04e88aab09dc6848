// The BPE model of tokenizer.json: vocab, ranked merges, byte fallback, unknown
// token handling and a bounded per-word cache, following `tokenizers`' models::bpe.
// Hand-written: no Debian package implements Hugging Face BPE (the merge loop must
// match the library's rank/position order exactly).
#pragma once
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/components.h"

namespace lorax::tok {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using Vocab = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// (left id, right id) -> (rank, merged id); open addressing keyed on the packed pair.
class MergeMap {
 public:
  void build(const std::vector<std::pair<uint64_t, std::pair<int32_t, int32_t>>>& entries);
  const std::pair<int32_t, int32_t>* find(int32_t a, int32_t b) const {
    if (slots_.empty()) return nullptr;
    uint64_t k = (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
    for (size_t i = slot(k);; i = (i + 1) & mask_) {
      if (slots_[i].key == k) return &slots_[i].val;
      if (slots_[i].key == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~0ull;
  size_t slot(uint64_t k) const { return static_cast<size_t>((k * 0x9E3779B97F4A7C15ull) >> 20) & mask_; }
  struct Slot {  // key and value side by side: one cache line per probe
    uint64_t key;
    std::pair<int32_t, int32_t> val;
  };
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

// Ids above this are taken as a corrupt file rather than allocated for.
constexpr int64_t kMaxTokenId = (1 << 24) - 1;
// Longest padding (Fixed or pad_to_multiple_of) a tokenizer.json may ask for.
constexpr uint64_t kMaxPadLength = 1 << 20;

class BpeModel {
 public:
  explicit BpeModel(const json& model);  // throws std::runtime_error
  // Appends the ids of one pre-token.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;
  std::optional<int32_t> token_to_id(std::string_view token) const;
  const std::string* id_to_token(int32_t id) const;
  int32_t max_id() const { return static_cast<int32_t>(id_to_token_.size()) - 1; }

 private:
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;

  Vocab vocab_;
  std::vector<const std::string*> id_to_token_;  // into vocab_'s keys (nodes never move); null for holes
  MergeMap merges_;
  std::string prefix_, suffix_;  // continuing_subword_prefix / end_of_word_suffix
  std::optional<std::string> unk_token_;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  int32_t byte_ids_[256];  // <0xXX> tokens for byte fallback, -1 when absent
  // Vocab ids of single characters below U+10000 (-1: not in the vocab), used when no
  // continuing-subword prefix / end-of-word suffix changes the lookup keys.
  std::vector<int32_t> char_ids_;

  static constexpr size_t kCacheCapacity = 10000;
  static constexpr size_t kMaxCachedWord = 256;
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace lorax::tok
