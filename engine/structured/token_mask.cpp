#include "structured/token_mask.h"

#include <algorithm>
#include <map>

#include "tokenizer/tokenizer.h"

namespace lorax::structured {

std::shared_ptr<const TokenTable> TokenTable::from_bytes(const std::vector<std::string>& bytes,
                                                         const std::set<int32_t>& eos_ids) {
  auto t = std::make_shared<TokenTable>();
  t->vocab_size_ = bytes.size();
  t->eos_ids_ = eos_ids;
  t->bytes_ = bytes;
  // Build with maps, then flatten into arrays in breadth-first order.
  struct Build {
    std::map<uint8_t, size_t> children;
    std::vector<int32_t> tokens;
  };
  std::vector<Build> b(1);
  for (size_t id = 0; id < bytes.size(); ++id) {
    if (bytes[id].empty() || eos_ids.count(static_cast<int32_t>(id))) continue;
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
  t->nodes_.resize(order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    const Build& n = b[order[i]];
    TrieNode& out = t->nodes_[i];
    out.first_edge = static_cast<uint32_t>(t->edges_.size());
    out.edge_count = static_cast<uint32_t>(n.children.size());
    for (auto& [c, child] : n.children) t->edges_.push_back({c, static_cast<uint32_t>(index[child])});
    out.first_token = static_cast<uint32_t>(t->tokens_.size());
    out.token_count = static_cast<uint32_t>(n.tokens.size());
    t->tokens_.insert(t->tokens_.end(), n.tokens.begin(), n.tokens.end());
  }
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
  MaskWalk(const Schema& s, const TokenTable& t, TokenMask& out) : s_(s), t_(t), out_(out) {}
  void run(const MatchState& start) {
    states_.resize(1);
    states_[0] = start;
    walk(0, 0);
  }

 private:
  void walk(uint32_t node, size_t depth) {
    const TokenTable::TrieNode& n = t_.nodes()[node];
    if (states_.size() < depth + 2) states_.resize(depth + 2);
    for (uint32_t e = n.first_edge; e < n.first_edge + n.edge_count; ++e) {
      const TokenTable::Edge& edge = t_.edges()[e];
      advance(s_, states_[depth], edge.byte, states_[depth + 1]);
      if (states_[depth + 1].dead()) continue;
      const TokenTable::TrieNode& child = t_.nodes()[edge.child];
      for (uint32_t k = child.first_token; k < child.first_token + child.token_count; ++k) {
        const int32_t id = t_.tokens()[k];
        out_.words[id / 32] |= 1u << (id % 32);
        out_.any_text = true;
      }
      if (child.edge_count) walk(edge.child, depth + 1);
    }
  }

  const Schema& s_;
  const TokenTable& t_;
  TokenMask& out_;
  std::vector<MatchState> states_;
};

}  // namespace

TokenMask compute_mask(const Schema& schema, const TokenTable& table, const MatchState& state, bool allow_eos) {
  TokenMask m;
  m.words.assign((table.vocab_size() + 31) / 32, 0);
  if (state.dead()) return m;
  MaskWalk(schema, table, m).run(state);
  if (allow_eos && state.can_finish(schema))
    for (int32_t id : table.eos_ids())
      if (id >= 0 && static_cast<size_t>(id) < table.vocab_size()) m.words[id / 32] |= 1u << (id % 32);
  return m;
}

MaskCache::MaskCache(std::shared_ptr<const Schema> schema, std::shared_ptr<const TokenTable> table, size_t capacity)
    : schema_(std::move(schema)), table_(std::move(table)), capacity_(std::max<size_t>(capacity, 1)) {}

std::shared_ptr<const TokenMask> MaskCache::mask(const MatchState& state, bool allow_eos) {
  std::string key = state.key();
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

bool Constraint::complete() { return !mask()->any_text; }

}  // namespace lorax::structured
