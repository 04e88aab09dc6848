#include "tokenizer/added_vocab.h"

#include <algorithm>

#include "tokenizer/unicode.h"

namespace lorax::tok {

void TokenTrie::add(std::string_view pattern, int32_t token_index) {
  if (pattern.empty()) return;
  int32_t n = 0;
  for (unsigned char c : pattern) {
    auto& ch = nodes_[n].children;
    auto it = std::lower_bound(ch.begin(), ch.end(), std::make_pair(c, INT32_MIN));
    if (it != ch.end() && it->first == c) {
      n = it->second;
    } else {
      int32_t next = static_cast<int32_t>(nodes_.size());
      nodes_[n].children.insert(it, {c, next});
      nodes_.emplace_back();
      n = next;
    }
  }
  first_byte_[static_cast<unsigned char>(pattern[0])] = true;
  if (nodes_[n].token < 0) nodes_[n].token = token_index;  // first token with this content wins
}

int32_t TokenTrie::longest_at(std::string_view s, size_t pos, size_t* len) const {
  if (!first_byte_[static_cast<unsigned char>(s[pos])]) return -1;
  int32_t n = 0, best = -1;
  for (size_t i = pos; i < s.size(); ++i) {
    auto& ch = nodes_[n].children;
    unsigned char c = s[i];
    auto it = std::lower_bound(ch.begin(), ch.end(), std::make_pair(c, INT32_MIN));
    if (it == ch.end() || it->first != c) break;
    n = it->second;
    if (nodes_[n].token >= 0) {
      best = nodes_[n].token;
      *len = i + 1 - pos;
    }
  }
  return best;
}

namespace {
char32_t last_char(std::string_view s) {
  size_t k = s.size() - 1;
  while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
  int n;
  return utf8_decode(s, k, &n);
}
// Start of the run of whitespace that ends s (regex `\s*$`).
size_t trailing_space_start(std::string_view s) {
  size_t e = s.size();
  while (e > 0) {
    size_t k = e - 1;
    while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
    int n;
    if (!is_whitespace(utf8_decode(s, k, &n))) break;
    e = k;
  }
  return e;
}
// Length of the run of whitespace that starts s (regex `^\s*`).
size_t leading_space_len(std::string_view s) {
  size_t b = 0;
  while (b < s.size()) {
    int n;
    if (!is_whitespace(utf8_decode(s, b, &n))) break;
    b += n;
  }
  return b;
}
}  // namespace

void find_added(std::string_view s, const TokenTrie& trie, const std::vector<AddedToken>& tokens,
                std::vector<Segment>& out) {
  out.clear();
  size_t start_offset = 0;
  if (!trie.empty()) {
    for (size_t pos = 0; pos < s.size();) {
      size_t len = 0;
      int32_t t = trie.longest_at(s, pos, &len);
      if (t < 0) {
        ++pos;
        continue;
      }
      size_t start = pos, stop = pos + len;
      pos = stop;  // matching resumes after this match even when it is rejected below
      const AddedToken& tok = tokens[t];
      if (tok.single_word) {
        bool start_space = start == 0 || !is_word_char(last_char(s.substr(0, start)));
        int n;
        bool stop_space = stop == s.size() || !is_word_char(utf8_decode(s, stop, &n));
        if (!start_space || !stop_space) continue;
      }
      if (tok.lstrip) start = std::max(trailing_space_start(s.substr(0, start)), start_offset);
      if (tok.rstrip) stop += leading_space_len(s.substr(stop));
      if (start_offset < start) out.push_back({start_offset, start, -1});
      out.push_back({start, stop, t});
      start_offset = stop;
    }
  }
  if (start_offset < s.size()) out.push_back({start_offset, s.size(), -1});
}

}  // namespace lorax::tok
