#include "tokenizer/bpe.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "tokenizer/unicode.h"

namespace lorax::tok {

void MergeMap::build(const std::vector<std::pair<uint64_t, std::pair<int32_t, int32_t>>>& entries) {
  size_t cap = 16;
  while (cap < entries.size() * 2) cap <<= 1;
  slots_.assign(cap, Slot{kEmpty, {0, 0}});
  mask_ = cap - 1;
  for (auto& [k, v] : entries) {
    size_t i = slot(k);
    while (slots_[i].key != kEmpty && slots_[i].key != k) i = (i + 1) & mask_;
    slots_[i] = Slot{k, v};  // a duplicate merge overwrites: the last rank wins, as in the Rust HashMap build
  }
}

static std::optional<std::string> opt_string(const json& m, const char* key) {
  if (!m.contains(key) || m[key].is_null()) return std::nullopt;
  return m[key].get<std::string>();
}

BpeModel::BpeModel(const json& m) {
  if (m.contains("dropout") && !m["dropout"].is_null() && m["dropout"].get<double>() != 0.0)
    throw std::runtime_error("BPE dropout is not supported");
  prefix_ = opt_string(m, "continuing_subword_prefix").value_or("");
  suffix_ = opt_string(m, "end_of_word_suffix").value_or("");
  unk_token_ = opt_string(m, "unk_token");
  fuse_unk_ = m.value("fuse_unk", false);
  byte_fallback_ = m.value("byte_fallback", false);
  ignore_merges_ = m.value("ignore_merges", false);

  const json& vocab = m.at("vocab");
  if (!vocab.is_object()) throw std::runtime_error("model.vocab must be an object");
  vocab_.reserve(vocab.size());
  int32_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const auto id = static_cast<int64_t>(json_count(it.value(), "the vocab id of '" + it.key() + "'", kMaxTokenId));
    vocab_[it.key()] = static_cast<int32_t>(id);
    max_id = std::max(max_id, static_cast<int32_t>(id));
  }
  id_to_token_.assign(static_cast<size_t>(max_id + 1), nullptr);
  for (auto& [tok, id] : vocab_) id_to_token_[id] = &tok;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    auto it = vocab_.find(std::string_view(name));
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }

  if (prefix_.empty() && suffix_.empty()) {
    char_ids_.assign(0x10000, -1);
    std::string key;
    for (char32_t cp = 0; cp < 0x10000; ++cp) {
      if (cp >= 0xD800 && cp < 0xE000) continue;
      key.clear();
      utf8_append(key, cp);
      auto it = vocab_.find(key);
      if (it != vocab_.end()) char_ids_[cp] = it->second;
    }
  }

  const json& merges = m.at("merges");
  if (!merges.is_array()) throw std::runtime_error("model.merges must be an array");
  std::vector<std::pair<uint64_t, std::pair<int32_t, int32_t>>> entries;
  entries.reserve(merges.size());
  int32_t rank = 0;
  std::string a, b;
  for (auto& mg : merges) {
    if (mg.is_string()) {
      const std::string& line = mg.get_ref<const std::string&>();
      size_t sp = line.find(' ');
      if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos)
        throw std::runtime_error("merge " + std::to_string(rank + 1) + " '" + line + "' is not two tokens");
      a = line.substr(0, sp);
      b = line.substr(sp + 1);
    } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
      a = mg[0].get<std::string>();
      b = mg[1].get<std::string>();
    } else {
      throw std::runtime_error("merge " + std::to_string(rank + 1) + " is neither \"a b\" nor [\"a\", \"b\"]");
    }
    auto ia = vocab_.find(a), ib = vocab_.find(b);
    if (ia == vocab_.end()) throw std::runtime_error("merge " + std::to_string(rank + 1) + " names unknown token '" + a + "'");
    if (ib == vocab_.end()) throw std::runtime_error("merge " + std::to_string(rank + 1) + " names unknown token '" + b + "'");
    std::string merged = a + b.substr(std::min(prefix_.size(), b.size()));
    auto im = vocab_.find(merged);
    if (im == vocab_.end())
      throw std::runtime_error("merge " + std::to_string(rank + 1) + " makes '" + merged + "' which is not in the vocab");
    uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(ia->second)) << 32) | static_cast<uint32_t>(ib->second);
    entries.push_back({key, {rank, im->second}});
    ++rank;
  }
  merges_.build(entries);
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size()) return nullptr;
  return id_to_token_[id];
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    auto it = vocab_.find(word);
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  bool cacheable = word.size() <= kMaxCachedWord;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(word);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  size_t start = out.size();
  merge_word(word, out);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() >= kCacheCapacity) cache_.clear();
    cache_.emplace(std::string(word), std::vector<int32_t>(out.begin() + static_cast<ptrdiff_t>(start), out.end()));
  }
}

namespace {
struct Symbol {
  int32_t id;
  int32_t prev, next;
  bool alive;
};
struct Candidate {
  int32_t rank, pos, new_id;
  // std heap is a max-heap: "greater" means lower rank, then leftmost position.
  bool operator<(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};
}  // namespace

void BpeModel::merge_word(std::string_view w, std::vector<int32_t>& out) const {
  thread_local std::vector<Symbol> syms;
  thread_local std::vector<Candidate> heap;
  thread_local std::string buf;
  syms.clear();
  heap.clear();
  auto add = [&](int32_t id) {
    int32_t n = static_cast<int32_t>(syms.size());
    syms.push_back({id, n - 1, n + 1, true});
  };
  // Pending unknown token: (id, still open). Mirrors the Rust loop, including that
  // byte-fallback pieces do not flush a pending unknown.
  bool unk_pending = false;
  int32_t unk_id = -1;
  auto unk_lookup = [&]() -> int32_t {
    auto it = vocab_.find(*unk_token_);
    if (it == vocab_.end()) throw std::runtime_error("unk_token '" + *unk_token_ + "' is not in the vocab");
    return it->second;
  };
  for (size_t i = 0; i < w.size();) {
    size_t n = utf8_len_from_lead(static_cast<unsigned char>(w[i]));
    if (i + n > w.size()) n = w.size() - i;
    bool first = i == 0, last = i + n >= w.size();
    std::string_view piece = w.substr(i, n);
    std::string_view key = piece;
    if ((!first && !prefix_.empty()) || (last && !suffix_.empty())) {
      buf.clear();
      if (!first) buf += prefix_;
      buf += piece;
      if (last) buf += suffix_;
      key = buf;
    }
    i += n;
    int32_t id = -1;
    if (!char_ids_.empty() && n < 4) {
      int len;
      id = char_ids_[utf8_decode(piece, 0, &len)];
    } else {
      auto it = vocab_.find(key);
      if (it != vocab_.end()) id = it->second;
    }
    if (id >= 0) {
      if (unk_pending) {
        add(unk_id);
        unk_pending = false;
      }
      add(id);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char c : key) all &= byte_ids_[c] >= 0;
      if (all) {
        for (unsigned char c : key) add(byte_ids_[c]);
        continue;
      }
    }
    if (unk_token_) {
      if (unk_pending && fuse_unk_) continue;
      if (unk_pending) add(unk_id);
      unk_id = unk_lookup();
      unk_pending = true;
    }
  }
  if (unk_pending) add(unk_id);
  if (syms.empty()) return;
  syms.back().next = -1;

  for (size_t k = 0; k + 1 < syms.size(); ++k)
    if (auto* m = merges_.find(syms[k].id, syms[k + 1].id))
      heap.push_back({m->first, static_cast<int32_t>(k), m->second});
  std::make_heap(heap.begin(), heap.end());
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    Candidate top = heap.back();
    heap.pop_back();
    Symbol& cur = syms[top.pos];
    if (!cur.alive || cur.next < 0) continue;
    Symbol& right = syms[cur.next];
    auto* m = merges_.find(cur.id, right.id);
    if (!m || m->second != top.new_id) continue;  // stale candidate
    cur.id = top.new_id;
    right.alive = false;
    cur.next = right.next;
    if (cur.next >= 0) syms[cur.next].prev = top.pos;
    if (cur.prev >= 0)
      if (auto* pm = merges_.find(syms[cur.prev].id, cur.id)) {
        heap.push_back({pm->first, cur.prev, pm->second});
        std::push_heap(heap.begin(), heap.end());
      }
    if (cur.next >= 0)
      if (auto* nm = merges_.find(cur.id, syms[cur.next].id)) {
        heap.push_back({nm->first, top.pos, nm->second});
        std::push_heap(heap.begin(), heap.end());
      }
  }
  for (auto& s : syms)
    if (s.alive) out.push_back(s.id);
}

}  // namespace lorax::tok
