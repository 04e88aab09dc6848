#include "tokenizer/split.h"

#include <algorithm>
#include <stdexcept>

namespace lorax::tok {

SplitBehavior parse_behavior(const std::string& n) {
  if (n == "Removed") return SplitBehavior::Removed;
  if (n == "Isolated") return SplitBehavior::Isolated;
  if (n == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (n == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (n == "Contiguous") return SplitBehavior::Contiguous;
  throw std::runtime_error("unknown split behavior '" + n + "'");
}

static void spans_from_matches(const std::vector<std::pair<size_t, size_t>>& m, size_t n, std::vector<Span>& out) {
  out.clear();
  if (n == 0) {
    out.push_back({0, 0, false});
    return;
  }
  size_t prev = 0;
  for (auto [b, e] : m) {
    if (prev != b) out.push_back({prev, b, false});
    out.push_back({b, e, true});
    prev = e;
  }
  if (prev != n) out.push_back({prev, n, false});
}

void regex_spans(const Regex& re, std::string_view s, std::vector<Span>& out) {
  thread_local std::vector<std::pair<size_t, size_t>> m;
  m.clear();
  if (!s.empty()) re.find_all(s, m);
  spans_from_matches(m, s.size(), out);
}

void string_spans(std::string_view pat, std::string_view s, std::vector<Span>& out) {
  if (pat.empty()) {
    out.clear();
    out.push_back({0, s.size(), false});
    return;
  }
  thread_local std::vector<std::pair<size_t, size_t>> m;
  m.clear();
  for (size_t pos = s.find(pat); pos != std::string_view::npos; pos = s.find(pat, pos + pat.size()))
    m.emplace_back(pos, pos + pat.size());
  spans_from_matches(m, s.size(), out);
}

void split_piece(const Piece& p, std::vector<Span>& spans, SplitBehavior behavior, bool invert,
                 std::vector<Piece>& out) {
  if (invert)
    for (auto& s : spans) s.match = !s.match;
  // (b, e, remove)
  thread_local std::vector<Span> res;
  res.clear();
  bool prev_match = false;
  switch (behavior) {
    case SplitBehavior::Removed:
      res = spans;
      break;
    case SplitBehavior::Isolated:
      for (auto s : spans) res.push_back({s.b, s.e, false});
      break;
    case SplitBehavior::MergedWithPrevious:
      for (auto s : spans) {
        if (s.match && !prev_match && !res.empty()) res.back().e = s.e;
        else res.push_back({s.b, s.e, false});
        prev_match = s.match;
      }
      break;
    case SplitBehavior::Contiguous:
      for (size_t i = 0; i < spans.size(); ++i) {
        auto s = spans[i];
        if (s.match == prev_match && !res.empty()) res.back().e = s.e;
        else res.push_back({s.b, s.e, false});
        prev_match = s.match;
      }
      break;
    case SplitBehavior::MergedWithNext:
      for (size_t k = spans.size(); k-- > 0;) {
        auto s = spans[k];
        if (s.match && !prev_match && !res.empty()) res.back().b = s.b;
        else res.push_back({s.b, s.e, false});
        prev_match = s.match;
      }
      std::reverse(res.begin(), res.end());
      break;
  }
  for (auto& r : res) {
    if (r.match || r.b >= r.e) continue;  // `match` here means "remove"
    out.push_back(Piece{p.text.substr(r.b, r.e - r.b), p.at_origin && r.b == 0});
  }
}

}  // namespace lorax::tok
