// Splitting one piece of text by a pattern with one of the library's
// SplitDelimiterBehavior modes. Matches are listed as spans covering the text
// (alternating gaps and matches), the shape the Rust library folds over.
// Hand-written: these split rules are specific to the `tokenizers` library.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/components.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace lorax::tok {

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };
SplitBehavior parse_behavior(const std::string& name);

struct Span {
  size_t b, e;
  bool match;
};

void regex_spans(const Regex& re, std::string_view s, std::vector<Span>& out);
void string_spans(std::string_view pattern, std::string_view s, std::vector<Span>& out);

// Every character for which pred(c) holds is a match of its own.
template <class Pred>
void char_spans(Pred pred, std::string_view s, std::vector<Span>& out) {
  out.clear();
  if (s.empty()) {
    out.push_back({0, 0, false});
    return;
  }
  size_t last = 0;
  for (size_t i = 0; i < s.size();) {
    int n;
    char32_t c = utf8_decode(s, i, &n);
    if (pred(c)) {
      if (last < i) out.push_back({last, i, false});
      out.push_back({i, i + n, true});
      last = i + n;
    }
    i += n;
  }
  if (last < s.size()) out.push_back({last, s.size(), false});
}

// Appends the non-empty sub-pieces of `p` to `out`.
void split_piece(const Piece& p, std::vector<Span>& spans, SplitBehavior behavior, bool invert,
                 std::vector<Piece>& out);

}  // namespace lorax::tok
