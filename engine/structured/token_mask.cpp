#include "structured/token_mask.h"

#include <algorithm>
#include <climits>
#include <map>

#include "tokenizer/tokenizer.h"

namespace lorax::structured {

namespace {

// Builds with maps, then flattens into arrays in breadth-first order.
TokenTable::Trie make_trie(const std::vector<std::string>& bytes, const std::vector<bool>& include) {
  struct Build {
    std::map<uint8_t, size_t> children;
    std::vector<int32_t> tokens;
  };
  std::vector<Build> b(1);
  for (size_t id = 0; id < bytes.size(); ++id) {
    if (!include[id]) continue;
    size_t at = 0;
    for (unsigned char c : bytes[id]) {
      auto it = b[at].children.find(c);
      if (it == b[at].children.end()) {
        b.emplace_back();
        it = b[at].children.emplace(c, b.size() - 1).first;
      }
      at = it->second;
    }
    b[at].tokens.push_back(static_cast<int32_t>(id));
  }
  std::vector<size_t> order = {0}, index(b.size());
  for (size_t i = 0; i < order.size(); ++i)
    for (auto& [_, child] : b[order[i]].children) order.push_back(child);
  for (size_t i = 0; i < order.size(); ++i) index[order[i]] = i;
  TokenTable::Trie t;
  t.nodes.resize(order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    const Build& n = b[order[i]];
    TokenTable::TrieNode& out = t.nodes[i];
    out.first_edge = static_cast<uint32_t>(t.edges.size());
    out.edge_count = static_cast<uint32_t>(n.children.size());
    for (auto& [c, child] : n.children) t.edges.push_back({c, static_cast<uint32_t>(index[child])});
    out.first_token = static_cast<uint32_t>(t.tokens.size());
    out.token_count = static_cast<uint32_t>(n.tokens.size());
    t.tokens.insert(t.tokens.end(), n.tokens.begin(), n.tokens.end());
  }
  return t;
}

// The characters of a token made only of plain string bytes; -1 otherwise.
int plain_chars(const std::string& bytes) {
  int chars = 0;
  for (size_t i = 0; i < bytes.size();) {
    const auto c = static_cast<uint8_t>(bytes[i]);
    if (c < 0x20 || c == '"' || c == '\\') return -1;
    size_t n = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (n == 0 || i + n > bytes.size()) return -1;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<uint8_t>(bytes[i + k]) & 0xC0) != 0x80) return -1;
    // Overlongs and surrogates (E0 80-9F, ED A0-BF, F0 80-8F, F4 90+) are not plain either.
    const auto d = n > 1 ? static_cast<uint8_t>(bytes[i + 1]) : 0;
    if ((c == 0xE0 && d < 0xA0) || (c == 0xED && d > 0x9F) || (c == 0xF0 && d < 0x90) || (c == 0xF4 && d > 0x8F))
      return -1;
    i += n;
    ++chars;
  }
  return chars;
}

}  // namespace

std::shared_ptr<const TokenTable> TokenTable::from_bytes(const std::vector<std::string>& bytes,
                                                         const std::set<int32_t>& eos_ids) {
  auto t = std::make_shared<TokenTable>();
  t->vocab_size_ = bytes.size();
  t->eos_ids_ = eos_ids;
  t->bytes_ = bytes;
  std::vector<bool> text(bytes.size()), special(bytes.size());
  const size_t words = (bytes.size() + 31) / 32;
  t->plain_up_to_chars_.assign(kMaxCharsBucket + 1, std::vector<uint32_t>(words, 0));
  for (size_t id = 0; id < bytes.size(); ++id) {
    text[id] = !bytes[id].empty() && !eos_ids.count(static_cast<int32_t>(id));
    if (!text[id]) continue;
    const int chars = plain_chars(bytes[id]);
    special[id] = chars < 0;
    for (size_t k = std::min<size_t>(std::max(chars, 0), kMaxCharsBucket); chars >= 0 && k <= kMaxCharsBucket; ++k)
      t->plain_up_to_chars_[k][id / 32] |= 1u << (id % 32);
    if (chars >= static_cast<int>(kMaxCharsBucket)) t->long_plain_.emplace_back(static_cast<int32_t>(id), chars);
  }
  for (size_t id = 0; id < bytes.size(); ++id) t->max_token_bytes_ = std::max(t->max_token_bytes_, bytes[id].size());
  t->all_ = make_trie(bytes, text);
  t->special_ = make_trie(bytes, special);
  return t;
}

std::shared_ptr<const TokenTable> TokenTable::build(const Tokenizer& tokenizer, const std::set<int32_t>& eos_ids) {
  std::vector<std::string> bytes(tokenizer.vocab_size());
  for (size_t id = 0; id < bytes.size(); ++id)
    if (auto b = tokenizer.token_bytes(static_cast<int32_t>(id))) bytes[id] = std::move(*b);
  return from_bytes(bytes, eos_ids);
}

namespace {

// Depth-first over the trie; states[d] is the matcher after d bytes (buffers reused).
class MaskWalk {
 public:
  MaskWalk(const Schema& s, const TokenTable::Trie& t, TokenMask& out) : s_(s), t_(t), out_(out) {}
  void run(const MatchState& start) {
    states_.resize(1);
    states_[0] = start;
    walk(0, 0);
  }

 private:
  void walk(uint32_t node, size_t depth) {
    const TokenTable::TrieNode& n = t_.nodes[node];
    if (states_.size() < depth + 2) states_.resize(depth + 2);
    for (uint32_t e = n.first_edge; e < n.first_edge + n.edge_count; ++e) {
      const TokenTable::Edge& edge = t_.edges[e];
      advance(s_, states_[depth], edge.byte, states_[depth + 1]);
      if (states_[depth + 1].dead()) continue;
      const TokenTable::TrieNode& child = t_.nodes[edge.child];
      for (uint32_t k = child.first_token; k < child.first_token + child.token_count; ++k) {
        const int32_t id = t_.tokens[k];
        out_.words[id / 32] |= 1u << (id % 32);
        out_.any_text = true;
      }
      if (child.edge_count) walk(edge.child, depth + 1);
    }
  }

  const Schema& s_;
  const TokenTable::Trie& t_;
  TokenMask& out_;
  std::vector<MatchState> states_;
};

}  // namespace

TokenMask compute_mask(const Schema& schema, const TokenTable& table, const MatchState& state, bool allow_eos) {
  TokenMask m;
  m.words.assign((table.vocab_size() + 31) / 32, 0);
  if (state.dead()) return m;
  if (auto room = plain_string_room(schema, state)) {
    // Inside a plain string: every plain token that fits is allowed as it is; only
    // the others (quotes, escapes, partial characters) are walked.
    const bool unlimited = *room == INT64_MAX;
    const size_t k = unlimited ? TokenTable::kMaxCharsBucket
                               : static_cast<size_t>(std::min<int64_t>(*room, TokenTable::kMaxCharsBucket - 1));
    m.words = table.plain_up_to_chars()[k];
    if (!unlimited)  // the longest plain tokens, one by one: some may not fit
      for (auto [id, chars] : table.long_plain())
        if (chars <= *room) m.words[id / 32] |= 1u << (id % 32);
    for (size_t w = 0; w < m.words.size() && !m.any_text; ++w) m.any_text = m.words[w] != 0;
    MaskWalk(schema, table.special(), m).run(state);
  } else {
    MaskWalk(schema, table.all(), m).run(state);
  }
  if (allow_eos && state.can_finish(schema))
    for (int32_t id : table.eos_ids())
      if (id >= 0 && static_cast<size_t>(id) < table.vocab_size()) m.words[id / 32] |= 1u << (id % 32);
  return m;
}

MaskCache::MaskCache(std::shared_ptr<const Schema> schema, std::shared_ptr<const TokenTable> table, size_t capacity)
    : schema_(std::move(schema)), table_(std::move(table)), capacity_(std::max<size_t>(capacity, 1)) {}

std::shared_ptr<const TokenMask> MaskCache::mask(const MatchState& state, bool allow_eos) {
  std::string key = state.key(*schema_, static_cast<int64_t>(table_->max_token_bytes()));
  key.push_back(allow_eos ? 'e' : 'n');
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = entries_.find(key); it != entries_.end()) {
      order_.splice(order_.begin(), order_, it->second.at);
      ++hits_;
      return it->second.mask;
    }
    ++misses_;
  }
  // Computed outside the lock: two requests may compute the same mask once each.
  auto m = std::make_shared<const TokenMask>(compute_mask(*schema_, *table_, state, allow_eos));
  std::lock_guard<std::mutex> lock(mu_);
  if (entries_.count(key)) return m;
  order_.push_front(key);
  entries_[key] = {m, order_.begin()};
  if (entries_.size() > capacity_) {
    entries_.erase(order_.back());
    order_.pop_back();
  }
  return m;
}

Constraint::Constraint(std::shared_ptr<MaskCache> masks, bool allow_eos)
    : masks_(std::move(masks)), allow_eos_(allow_eos), state_(initial_state(masks_->schema())) {}

std::shared_ptr<const TokenMask> Constraint::mask() {
  if (!mask_) mask_ = masks_->mask(state_, allow_eos_);
  return mask_;
}

bool Constraint::accept(int32_t token) {
  if (!mask()->allows(token)) return false;
  if (masks_->table().eos_ids().count(token)) return true;
  if (!advance(masks_->schema(), state_, masks_->table().bytes(token))) return false;
  mask_.reset();
  return true;
}

bool Constraint::complete() {
  if (mask_) return !mask_->any_text;
  // Without the mask (worked out later, off this thread): complete when the text
  // may end here and no byte may follow. Most states are inside the value, where
  // the first test already says no.
  const Schema& schema = masks_->schema();
  if (!state_.can_finish(schema)) return false;
  MatchState next;
  for (int byte = 0; byte < 256; ++byte) {
    advance(schema, state_, static_cast<uint8_t>(byte), next);
    if (!next.dead()) return false;
  }
  return true;
}

MaskWorkers::MaskWorkers(int threads) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
}

MaskWorkers::~MaskWorkers() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void MaskWorkers::drain() {
  for (size_t i = next_++; i < batch_->size(); i = next_++) (*batch_)[i]->mask();
}

void MaskWorkers::work() {
  uint64_t seen = 0;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
    if (stop_) return;
    seen = generation_;
    if (!batch_) continue;  // woke after that batch was done
    ++busy_;  // under the lock: prepare() cannot finish the batch while this worker is in it
    lock.unlock();
    drain();
    lock.lock();
    if (--busy_ == 0) done_.notify_all();
  }
}

void MaskWorkers::prepare(const std::vector<Constraint*>& constraints) {
  if (threads_.empty() || constraints.size() < 2) {
    for (Constraint* c : constraints) c->mask();
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch_ = &constraints;
    next_ = 0;
    ++generation_;
  }
  wake_.notify_all();
  drain();
  // Workers that woke late find nothing left; wait for the ones still walking.
  std::unique_lock<std::mutex> lock(mu_);
  done_.wait(lock, [&] { return busy_ == 0; });
  batch_ = nullptr;
}

}  // namespace lorax::structured
