// Decoders of tokenizer.json: each rewrites the list of token strings, and the
// final text is their concatenation (as `tokenizers`' decode_chain + join does).
// Hand-written: small string rewrites specific to the library.
#include <stdexcept>

#include "tokenizer/byte_level.h"
#include "tokenizer/components.h"
#include "tokenizer/split.h"
#include "tokenizer/unicode.h"

namespace lorax::tok {
namespace {

class ByteLevel : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    decode_chain_bytes(tokens);
    tokens[0] = utf8_lossy(tokens[0]);
  }
  void decode_chain_bytes(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (auto& t : tokens)
      if (!byte_level_to_bytes(t, bytes)) bytes += t;
    tokens.assign(1, std::move(bytes));
  }
};

class Metaspace : public Decoder {
 public:
  Metaspace(std::string rep, bool strip_first) : rep_(std::move(rep)), strip_first_(strip_first) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string& t = tokens[i];
      if (t.find(rep_) == std::string::npos || rep_.empty()) continue;
      std::string out;
      for (size_t pos = 0; pos < t.size();) {
        if (t.compare(pos, rep_.size(), rep_) == 0) {
          if (!(i == 0 && strip_first_)) out += ' ';
          pos += rep_.size();
        } else {
          out += t[pos++];
        }
      }
      t = std::move(out);
    }
  }

 private:
  std::string rep_;
  bool strip_first_;
};

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "<0xAB>" -> 0xAB, else -1. Rust's u8::from_str_radix also takes a leading '+'.
int byte_token(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  if (t[3] == '+') return hex_digit(t[4]);
  int h = hex_digit(t[3]), l = hex_digit(t[4]);
  return h < 0 || l < 0 ? -1 : h * 16 + l;
}

class ByteFallback : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override { rewrite(tokens, true); }
  void decode_chain_bytes(std::vector<std::string>& tokens) const override { rewrite(tokens, false); }

 private:
  static void rewrite(std::vector<std::string>& tokens, bool lossy) {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string pending;
    auto flush = [&] {
      if (pending.empty()) return;
      if (!lossy || utf8_valid(pending)) out.push_back(pending);
      else
        for (size_t k = 0; k < pending.size(); ++k) out.push_back("\xEF\xBF\xBD");
      pending.clear();
    };
    for (auto& t : tokens) {
      int b = byte_token(t);
      if (b >= 0) {
        pending += static_cast<char>(b);
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens = std::move(out);
  }
};

class Fuse : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class Strip : public Decoder {
 public:
  Strip(std::string content, size_t start, size_t stop) : start_(start), stop_(stop) {
    int n;
    content_ = content.empty() ? 0 : utf8_decode(content, 0, &n);
  }
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      std::vector<std::pair<char32_t, size_t>> chars;  // (char, byte offset)
      for (size_t i = 0; i < t.size();) {
        int n;
        chars.emplace_back(utf8_decode(t, i, &n), i);
        i += n;
      }
      size_t start_cut = 0;
      for (size_t i = 0; i < start_ && i < chars.size(); ++i) {
        if (chars[i].first != content_) break;
        start_cut = i + 1;
      }
      size_t stop_cut = chars.size();
      for (size_t i = 0; i < stop_ && i < chars.size(); ++i) {
        size_t idx = chars.size() - i - 1;
        if (chars[idx].first != content_) break;
        stop_cut = idx;
      }
      if (stop_cut <= start_cut) {
        t.clear();
        continue;
      }
      size_t b = start_cut < chars.size() ? chars[start_cut].second : t.size();
      size_t e = stop_cut < chars.size() ? chars[stop_cut].second : t.size();
      t = t.substr(b, e - b);
    }
  }

 private:
  char32_t content_;
  size_t start_, stop_;
};

class Replace : public Decoder {
 public:
  Replace(const PatternSpec& p, std::string content) : content_(std::move(content)) {
    if (p.is_regex) regex_ = std::make_unique<Regex>(p.text);
    else pattern_ = p.text;
  }
  void decode_chain(std::vector<std::string>& tokens) const override {
    thread_local std::vector<Span> spans;
    for (auto& t : tokens) {
      if (regex_) regex_spans(*regex_, t, spans);
      else string_spans(pattern_, t, spans);
      std::string out;
      for (auto& s : spans) {
        if (s.match) out += content_;
        else out.append(t, s.b, s.e - s.b);
      }
      t = std::move(out);
    }
  }

 private:
  std::string pattern_, content_;
  std::unique_ptr<Regex> regex_;
};

// BPEDecoder: the end-of-word suffix becomes a space, except in the last token.
std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  std::string out;
  size_t pos = 0;
  for (size_t f = s.find(from); f != std::string::npos; f = s.find(from, pos)) {
    out.append(s, pos, f - pos);
    out += to;
    pos = f + from.size();
  }
  out.append(s, pos, std::string::npos);
  return out;
}

// WordPiece: pieces without the continuation prefix start a new word; optional
// English clean-up of spaces before punctuation and contractions.
class BpeSuffix : public Decoder {
 public:
  explicit BpeSuffix(std::string suffix) : suffix_(std::move(suffix)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    if (suffix_.empty()) return;
    for (size_t i = 0; i < tokens.size(); ++i) {
      tokens[i] = replace_all(std::move(tokens[i]), suffix_, i + 1 == tokens.size() ? "" : " ");
    }
  }

 private:
  std::string suffix_;
};

class WordPiece : public Decoder {
 public:
  WordPiece(std::string prefix, bool cleanup) : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string& t = tokens[i];
      if (i != 0) {
        if (t.compare(0, prefix_.size(), prefix_) == 0) t.erase(0, prefix_.size());
        else t.insert(0, 1, ' ');
      }
      if (cleanup_) {
        static const std::pair<const char*, const char*> kRules[] = {
            {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
            {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
        for (auto& [from, to] : kRules) t = replace_all(std::move(t), from, to);
      }
    }
  }

 private:
  std::string prefix_;
  bool cleanup_;
};

class Sequence : public Decoder {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Decoder>> items) : items_(std::move(items)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& d : items_) d->decode_chain(tokens);
  }
  void decode_chain_bytes(std::vector<std::string>& tokens) const override {
    for (auto& d : items_) d->decode_chain_bytes(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> items_;
};

}  // namespace

std::unique_ptr<Decoder> make_decoder(const json& j) {
  if (j.is_null()) return nullptr;
  std::string type = j.at("type").get<std::string>();
  if (type == "ByteLevel") return std::make_unique<ByteLevel>();
  if (type == "Metaspace") {
    bool strip_first = true;
    if (j.contains("prepend_scheme") && !j["prepend_scheme"].is_null())
      strip_first = j["prepend_scheme"].get<std::string>() != "never";
    else if (j.contains("add_prefix_space"))
      strip_first = j["add_prefix_space"].get<bool>();
    return std::make_unique<Metaspace>(j.value("replacement", std::string("\u2581")), strip_first);
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallback>();
  if (type == "Fuse") return std::make_unique<Fuse>();
  if (type == "Strip")
    return std::make_unique<Strip>(j.at("content").get<std::string>(),
                                   j.contains("start") ? json_count(j["start"], "Strip decoder start", UINT32_MAX) : 0,
                                   j.contains("stop") ? json_count(j["stop"], "Strip decoder stop", UINT32_MAX) : 0);
  if (type == "Replace")
    return std::make_unique<Replace>(parse_pattern(j.at("pattern")), j.at("content").get<std::string>());
  if (type == "BPEDecoder") return std::make_unique<BpeSuffix>(j.value("suffix", std::string("</w>")));
  if (type == "WordPiece")
    return std::make_unique<WordPiece>(j.value("prefix", std::string("##")), j.value("cleanup", true));
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> items;
    for (auto& d : j.at("decoders"))
      if (auto x = make_decoder(d)) items.push_back(std::move(x));
    return std::make_unique<Sequence>(std::move(items));
  }
  throw std::runtime_error("unsupported decoder type '" + type + "'");
}

}  // namespace lorax::tok
