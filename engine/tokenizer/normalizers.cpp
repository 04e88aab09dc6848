// Normalizers of tokenizer.json. Unicode normal forms come from utf8proc; the
// rest are small string rewrites that follow the `tokenizers` library.
#include <utf8proc.h>

#include <cstdlib>
#include <stdexcept>

#include "tokenizer/components.h"
#include "tokenizer/split.h"
#include "tokenizer/unicode.h"

namespace lorax::tok {
namespace {

bool is_ascii(const std::string& s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

class UnicodeForm : public Normalizer {
 public:
  explicit UnicodeForm(int options) : options_(options) {}
  void normalize(std::string& s) const override {
    if (is_ascii(s)) return;  // every normal form leaves ASCII unchanged
    utf8proc_uint8_t* out = nullptr;
    auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()),
                          &out, static_cast<utf8proc_option_t>(options_));
    if (n < 0) throw std::runtime_error(std::string("unicode normalization failed: ") + utf8proc_errmsg(n));
    s.assign(reinterpret_cast<char*>(out), static_cast<size_t>(n));
    std::free(out);
  }

 private:
  int options_;
};

class Lowercase : public Normalizer {
 public:
  void normalize(std::string& s) const override { s = to_lower(s); }
};

class Strip : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& s) const override {
    size_t b = 0, e = s.size();
    if (left_) {
      while (b < e) {
        int n;
        if (!is_whitespace(utf8_decode(s, b, &n))) break;
        b += n;
      }
    }
    if (right_) {
      while (e > b) {
        size_t k = e - 1;
        while (k > b && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
        int n;
        if (!is_whitespace(utf8_decode(s, k, &n))) break;
        e = k;
      }
    }
    s = s.substr(b, e - b);
  }

 private:
  bool left_, right_;
};

class StripAccents : public Normalizer {
 public:
  void normalize(std::string& s) const override {
    std::string out;
    for (size_t i = 0; i < s.size();) {
      int n;
      char32_t c = utf8_decode(s, i, &n);
      if (!is_combining_mark(c)) out.append(s, i, n);
      i += n;
    }
    s = std::move(out);
  }
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string p) : prepend_(std::move(p)) {}
  void normalize(std::string& s) const override {
    if (!s.empty()) s.insert(0, prepend_);
  }

 private:
  std::string prepend_;
};

class Replace : public Normalizer {
 public:
  Replace(const PatternSpec& p, std::string content) : content_(std::move(content)) {
    if (p.is_regex) regex_ = std::make_unique<Regex>(p.text);
    else pattern_ = p.text;
  }
  void normalize(std::string& s) const override {
    thread_local std::vector<Span> spans;
    if (regex_) regex_spans(*regex_, s, spans);
    else string_spans(pattern_, s, spans);
    bool any = false;
    for (auto& sp : spans) any |= sp.match;
    if (!any) return;
    std::string out;
    out.reserve(s.size() + 16);
    for (auto& sp : spans) {
      if (sp.match) out += content_;
      else out.append(s, sp.b, sp.e - sp.b);
    }
    s = std::move(out);
  }

 private:
  std::string pattern_, content_;
  std::unique_ptr<Regex> regex_;
};

class Sequence : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> items) : items_(std::move(items)) {}
  void normalize(std::string& s) const override {
    for (auto& n : items_) n->normalize(s);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> items_;
};

}  // namespace

PatternSpec parse_pattern(const json& j) {
  if (j.is_object() && j.contains("String")) return {false, j.at("String").get<std::string>()};
  if (j.is_object() && j.contains("Regex")) return {true, j.at("Regex").get<std::string>()};
  throw std::runtime_error("pattern must be {\"String\": ...} or {\"Regex\": ...}");
}

std::unique_ptr<Normalizer> make_normalizer(const json& j) {
  if (j.is_null()) return nullptr;
  std::string type = j.at("type").get<std::string>();
  if (type == "NFC") return std::make_unique<UnicodeForm>(UTF8PROC_STABLE | UTF8PROC_COMPOSE);
  if (type == "NFD") return std::make_unique<UnicodeForm>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
  if (type == "NFKC") return std::make_unique<UnicodeForm>(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
  if (type == "NFKD") return std::make_unique<UnicodeForm>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "Strip")
    return std::make_unique<Strip>(j.value("strip_left", true), j.value("strip_right", true));
  if (type == "StripAccents") return std::make_unique<StripAccents>();
  if (type == "Prepend") return std::make_unique<Prepend>(j.at("prepend").get<std::string>());
  if (type == "Replace")
    return std::make_unique<Replace>(parse_pattern(j.at("pattern")), j.at("content").get<std::string>());
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> items;
    for (auto& n : j.at("normalizers"))
      if (auto p = make_normalizer(n)) items.push_back(std::move(p));
    return std::make_unique<Sequence>(std::move(items));
  }
  throw std::runtime_error("unsupported normalizer type '" + type + "'");
}

}  // namespace lorax::tok
