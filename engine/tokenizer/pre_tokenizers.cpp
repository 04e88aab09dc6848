// Pre-tokenizers of tokenizer.json, each a split of every piece, as in the
// `tokenizers` library (ByteLevel also maps bytes to its printable alphabet).
#include <stdexcept>

#include "tokenizer/byte_level.h"
#include "tokenizer/components.h"
#include "tokenizer/split.h"

namespace lorax::tok {
namespace {

constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Applies `fn(piece, spans)` to fill spans, then splits with the behaviour.
template <class SpanFn>
void split_all(std::vector<Piece>& pieces, SplitBehavior behavior, bool invert, SpanFn fn) {
  thread_local std::vector<Span> spans;
  std::vector<Piece> out;
  out.reserve(pieces.size() * 2);
  for (auto& p : pieces) {
    fn(p.text, spans);
    split_piece(p, spans, behavior, invert, out);
  }
  pieces = std::move(out);
}

class Split : public PreTokenizer {
 public:
  Split(const PatternSpec& p, SplitBehavior b, bool invert) : behavior_(b), invert_(invert) {
    if (p.is_regex) regex_ = std::make_unique<Regex>(p.text);
    else pattern_ = p.text;
  }
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_all(pieces, behavior_, invert_, [&](const std::string& s, std::vector<Span>& spans) {
      if (regex_) regex_spans(*regex_, s, spans);
      else string_spans(pattern_, s, spans);
    });
  }

 private:
  std::string pattern_;
  std::unique_ptr<Regex> regex_;
  SplitBehavior behavior_;
  bool invert_;
};

class ByteLevel : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_ = std::make_unique<Regex>(kGpt2Pattern);
  }
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    if (add_prefix_space_)
      for (auto& p : pieces)
        if (p.text.empty() || p.text[0] != ' ') {
          std::string t(1, ' ');
          t += p.text;
          p.text.swap(t);
        }
    if (regex_)
      split_all(pieces, SplitBehavior::Isolated, false,
                [&](const std::string& s, std::vector<Span>& spans) { regex_spans(*regex_, s, spans); });
    for (auto& p : pieces) p.text = bytes_to_byte_level(p.text);
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

enum class Prepend { Always, First, Never };

class Metaspace : public PreTokenizer {
 public:
  Metaspace(std::string replacement, Prepend scheme, bool split)
      : rep_(std::move(replacement)), scheme_(scheme), split_(split) {
    int n;
    rep_char_ = rep_.empty() ? U'\u2581' : utf8_decode(rep_, 0, &n);
  }
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (auto& p : pieces) {
      if (p.text.find(' ') != std::string::npos) {
        std::string t;
        t.reserve(p.text.size() + 8);
        for (char c : p.text) {
          if (c == ' ') t += rep_;
          else t += c;
        }
        p.text = std::move(t);
      }
      bool starts = p.text.compare(0, rep_.size(), rep_) == 0;
      if (!starts && (scheme_ == Prepend::Always || (scheme_ == Prepend::First && p.at_origin)))
        p.text.insert(0, rep_);
    }
    if (split_)
      split_all(pieces, SplitBehavior::MergedWithNext, false, [&](const std::string& s, std::vector<Span>& spans) {
        char_spans([&](char32_t c) { return c == rep_char_; }, s, spans);
      });
  }

 private:
  std::string rep_;
  char32_t rep_char_;
  Prepend scheme_;
  bool split_;
};

// Generic "split by a character predicate" pre-tokenizer (Digits, Punctuation, WhitespaceSplit, ...).
template <class Pred>
class CharSplit : public PreTokenizer {
 public:
  CharSplit(Pred pred, SplitBehavior b) : pred_(pred), behavior_(b) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_all(pieces, behavior_, false,
              [&](const std::string& s, std::vector<Span>& spans) { char_spans(pred_, s, spans); });
  }

 private:
  Pred pred_;
  SplitBehavior behavior_;
};
template <class Pred>
std::unique_ptr<PreTokenizer> char_split(Pred p, SplitBehavior b) {
  return std::make_unique<CharSplit<Pred>>(p, b);
}

class Sequence : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> items) : items_(std::move(items)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (auto& p : items_) p->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> items_;
};

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j) {
  if (j.is_null()) return nullptr;
  std::string type = j.at("type").get<std::string>();
  if (type == "Split")
    return std::make_unique<Split>(parse_pattern(j.at("pattern")), parse_behavior(j.at("behavior").get<std::string>()),
                                   j.value("invert", false));
  if (type == "ByteLevel") return std::make_unique<ByteLevel>(j.value("add_prefix_space", true), j.value("use_regex", true));
  if (type == "Metaspace") {
    Prepend scheme = Prepend::Always;
    if (j.contains("prepend_scheme") && !j["prepend_scheme"].is_null()) {
      std::string s = j["prepend_scheme"].get<std::string>();
      if (s == "always") scheme = Prepend::Always;
      else if (s == "first") scheme = Prepend::First;
      else if (s == "never") scheme = Prepend::Never;
      else throw std::runtime_error("unknown Metaspace prepend_scheme '" + s + "'");
    } else if (j.contains("add_prefix_space")) {
      scheme = j["add_prefix_space"].get<bool>() ? Prepend::Always : Prepend::Never;
    }
    return std::make_unique<Metaspace>(j.value("replacement", std::string("\u2581")), scheme, j.value("split", true));
  }
  if (type == "Digits")
    return char_split(is_numeric, j.value("individual_digits", false) ? SplitBehavior::Isolated : SplitBehavior::Contiguous);
  if (type == "Punctuation")
    return char_split(is_punctuation, parse_behavior(j.value("behavior", std::string("Isolated"))));
  if (type == "WhitespaceSplit") return char_split(is_whitespace, SplitBehavior::Removed);
  if (type == "CharDelimiterSplit") {
    std::string d = j.at("delimiter").get<std::string>();
    int n = 0;
    char32_t dc = d.empty() ? 0 : utf8_decode(d, 0, &n);
    return char_split([dc](char32_t c) { return c == dc; }, SplitBehavior::Removed);
  }
  if (type == "Whitespace") return std::make_unique<Split>(PatternSpec{true, R"(\w+|[^\w\s]+)"}, SplitBehavior::Removed, true);
  if (type == "BertPreTokenizer") {
    std::vector<std::unique_ptr<PreTokenizer>> items;
    items.push_back(char_split(is_whitespace, SplitBehavior::Removed));
    items.push_back(char_split(is_punctuation, SplitBehavior::Isolated));
    return std::make_unique<Sequence>(std::move(items));
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> items;
    for (auto& p : j.at("pretokenizers"))
      if (auto x = make_pre_tokenizer(p)) items.push_back(std::move(x));
    return std::make_unique<Sequence>(std::move(items));
  }
  throw std::runtime_error("unsupported pre_tokenizer type '" + type + "'");
}

}  // namespace lorax::tok
