// Which vocabulary tokens may come next under a JSON matcher state. The
// tokenizer's tokens are laid out once as a byte trie (TokenTable); a mask is
// one walk of the trie from the state, so tokens sharing a prefix are matched
// once and a rejected prefix prunes everything below it. Masks are cached per
// schema by exact state (MaskCache): decoding inside a string or between keys
// revisits the same states, and a cached mask costs a hash lookup.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "structured/json_matcher.h"

namespace lorax {
class Tokenizer;
}

namespace lorax::structured {

class TokenTable {
 public:
  // Every token's bytes (Tokenizer::token_bytes); special tokens other than the
  // end-of-sequence ids are never allowed under a constraint.
  static std::shared_ptr<const TokenTable> build(const Tokenizer& tokenizer, const std::set<int32_t>& eos_ids);
  // From explicit token bytes (tests): bytes[id] empty = never allowed.
  static std::shared_ptr<const TokenTable> from_bytes(const std::vector<std::string>& bytes,
                                                      const std::set<int32_t>& eos_ids);

  struct TrieNode {
    uint32_t first_edge = 0, edge_count = 0;
    uint32_t first_token = 0, token_count = 0;  // tokens whose bytes end here
  };
  struct Edge {
    uint8_t byte;
    uint32_t child;
  };
  struct Trie {
    std::vector<TrieNode> nodes;  // nodes[0] is the root (the empty prefix)
    std::vector<Edge> edges;
    std::vector<int32_t> tokens;
  };
  // Tokens made only of plain string bytes (json_matcher.h: plain_string_room),
  // which inside a plain string need no walk: plain_up_to_chars()[k] holds those of
  // at most k characters for k < kMaxCharsBucket, its last entry all of them.
  static constexpr size_t kMaxCharsBucket = 32;
  size_t vocab_size() const { return vocab_size_; }
  size_t max_token_bytes() const { return max_token_bytes_; }
  const std::set<int32_t>& eos_ids() const { return eos_ids_; }
  const std::string& bytes(int32_t id) const { return bytes_[id]; }
  const Trie& all() const { return all_; }        // every text token
  const Trie& special() const { return special_; }  // the tokens that are not plain
  const std::vector<std::vector<uint32_t>>& plain_up_to_chars() const { return plain_up_to_chars_; }
  const std::vector<std::pair<int32_t, int>>& long_plain() const { return long_plain_; }  // (id, characters)

 private:
  size_t vocab_size_ = 0, max_token_bytes_ = 0;
  std::set<int32_t> eos_ids_;
  std::vector<std::string> bytes_;
  Trie all_, special_;
  std::vector<std::vector<uint32_t>> plain_up_to_chars_;
  std::vector<std::pair<int32_t, int>> long_plain_;  // plain tokens of kMaxCharsBucket characters or more
};

// One bit per token id (bit id % 32 of word id / 32).
struct TokenMask {
  std::vector<uint32_t> words;
  bool any_text = false;  // some non-EOS token is allowed (false: the text is complete)
  bool allows(int32_t id) const {
    return id >= 0 && static_cast<size_t>(id) / 32 < words.size() && (words[id / 32] >> (id % 32) & 1);
  }
};

// The mask of `state` by a walk of the trie (no cache). EOS ids are allowed when
// the text can end there and `allow_eos`.
TokenMask compute_mask(const Schema& schema, const TokenTable& table, const MatchState& state, bool allow_eos);

// Masks of one schema over one tokenizer, shared by every request with that
// schema; thread-safe; keeps at most `capacity` masks, least recently used out.
class MaskCache {
 public:
  MaskCache(std::shared_ptr<const Schema> schema, std::shared_ptr<const TokenTable> table, size_t capacity = 2048);
  std::shared_ptr<const TokenMask> mask(const MatchState& state, bool allow_eos);
  const Schema& schema() const { return *schema_; }
  const TokenTable& table() const { return *table_; }
  uint64_t hits() const { return hits_; }
  uint64_t misses() const { return misses_; }

 private:
  std::shared_ptr<const Schema> schema_;
  std::shared_ptr<const TokenTable> table_;
  size_t capacity_;
  std::mutex mu_;
  std::list<std::string> order_;  // most recent first
  struct Entry {
    std::shared_ptr<const TokenMask> mask;
    std::list<std::string>::iterator at;
  };
  std::unordered_map<std::string, Entry> entries_;
  uint64_t hits_ = 0, misses_ = 0;
};

// One request's constraint: its matcher state and the masks of its schema.
class Constraint {
 public:
  Constraint(std::shared_ptr<MaskCache> masks, bool allow_eos);
  std::shared_ptr<const TokenMask> mask();
  // Feeds the chosen token's bytes (EOS feeds nothing); false when the mask did
  // not allow it (the state is then unchanged).
  bool accept(int32_t token);
  // Nothing but the end may follow: the text written is a complete value. Cheap:
  // it does not need this state's mask.
  bool complete();

 private:
  std::shared_ptr<MaskCache> masks_;
  bool allow_eos_;
  MatchState state_;
  std::shared_ptr<const TokenMask> mask_;  // of state_, once asked for
};

// Threads that work out many requests' masks at once (a batch of constrained
// rows whose states the cache has not seen costs a trie walk each, ~0.1-0.2 ms
// for a 128k vocabulary, which would otherwise add up on the engine thread).
class MaskWorkers {
 public:
  explicit MaskWorkers(int threads);  // 0: everything on the caller's thread
  ~MaskWorkers();
  MaskWorkers(const MaskWorkers&) = delete;
  MaskWorkers& operator=(const MaskWorkers&) = delete;
  // Every constraint's mask() is ready when this returns; the caller works too.
  void prepare(const std::vector<Constraint*>& constraints);

 private:
  void work();
  void drain();
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  const std::vector<Constraint*>* batch_ = nullptr;
  std::atomic<size_t> next_{0};
  int busy_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

}  // namespace lorax::structured
