#include "tokenizer/jinja/lexer.h"

#include <cctype>
#include <cstring>

#include "tokenizer/jinja/error.h"
#include "tokenizer/jinja/utf8.h"

namespace lorax::jinja {
namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_ident(char c) { return is_ident_start(c) || (c >= '0' && c <= '9'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string err_at(const std::string& msg, int line) { return msg + " at line " + std::to_string(line); }

// Python's `str.rstrip()` on the data before a `{%-` tag.
std::string rstrip_ws(const std::string& s) { return utf8::strip(s, false, true, nullptr); }

// Decodes a Python string literal body the way jinja2 does (unicode-escape).
std::string unescape(const std::string& body, int line) {
  std::string out;
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (c != '\\' || i + 1 >= body.size()) {
      out.push_back(c);
      continue;
    }
    char n = body[++i];
    auto hex = [&](int digits) {
      if (i + digits >= body.size()) {
        throw TemplateError(err_at("truncated \\x/\\u escape in string literal", line));
      }
      unsigned long cp = 0;
      for (int k = 1; k <= digits; ++k) {
        char h = body[i + k];
        int v = (h >= '0' && h <= '9') ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
        if (v < 0) throw TemplateError(err_at("bad \\x/\\u escape in string literal", line));
        cp = cp * 16 + v;
      }
      i += digits;
      utf8::append(out, static_cast<char32_t>(cp));
    };
    switch (n) {
      case '\n': break;
      case '\\': out.push_back('\\'); break;
      case '\'': out.push_back('\''); break;
      case '"': out.push_back('"'); break;
      case 'a': out.push_back('\a'); break;
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 't': out.push_back('\t'); break;
      case 'v': out.push_back('\v'); break;
      case 'x': hex(2); break;
      case 'u': hex(4); break;
      case 'U': hex(8); break;
      default:
        if (n >= '0' && n <= '7') {
          unsigned cp = n - '0';
          for (int k = 0; k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7'; ++k)
            cp = cp * 8 + (body[++i] - '0');
          utf8::append(out, cp);
        } else {
          // Python keeps unknown escapes such as "\d" as written.
          out.push_back('\\');
          out.push_back(n);
        }
    }
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string src) : s_(std::move(src)) {}

  std::vector<Token> run() {
    bool line_starting = true;
    while (pos_ < s_.size()) {
      size_t tag = find_tag(pos_);
      if (tag == std::string::npos) {
        emit_data(s_.substr(pos_), line_);
        break;
      }
      std::string text = s_.substr(pos_, tag - pos_);
      char kind = s_[tag + 1];
      char sign = tag + 2 < s_.size() && (s_[tag + 2] == '-' || s_[tag + 2] == '+') ? s_[tag + 2] : 0;
      text = apply_lstrip(text, sign, kind != '{', line_starting);
      int text_line = line_;
      line_ += count_newlines(s_, pos_, tag);
      emit_data(text, text_line);
      size_t after = tag + 2 + (sign ? 1 : 0);
      std::string consumed;
      if (kind == '%' && try_raw(after, line_starting)) continue;
      if (kind == '#') {
        consumed = lex_comment(after);
      } else {
        consumed = lex_tag(after, kind == '%');
      }
      line_starting = !consumed.empty() && consumed.back() == '\n';
    }
    toks_.push_back({Token::Kind::Eof, "", line_});
    return std::move(toks_);
  }

 private:
  static int count_newlines(const std::string& s, size_t a, size_t b) {
    int n = 0;
    for (size_t i = a; i < b && i < s.size(); ++i) n += s[i] == '\n';
    return n;
  }

  size_t find_tag(size_t from) const {
    for (size_t i = from; i + 1 < s_.size(); ++i)
      if (s_[i] == '{' && (s_[i + 1] == '{' || s_[i + 1] == '%' || s_[i + 1] == '#')) return i;
    return std::string::npos;
  }

  // lstrip_blocks: drop spaces/tabs between a line start and a block/comment tag.
  static std::string apply_lstrip(const std::string& text, char sign, bool is_block, bool line_starting) {
    if (sign == '-') return rstrip_ws(text);
    if (sign == '+' || !is_block) return text;
    size_t nl = text.rfind('\n');
    size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
    if (l_pos == 0 && !line_starting) return text;
    for (size_t i = l_pos; i < text.size(); ++i)
      if (text[i] != ' ' && text[i] != '\t') return text;
    return text.substr(0, l_pos);
  }

  void emit_data(const std::string& text, int line) {
    if (!text.empty()) toks_.push_back({Token::Kind::Data, text, line});
  }

  // Consumes the end of a `%}` / `#}` tag: `-` eats all following whitespace,
  // trim_blocks eats one newline, `+` keeps everything.
  std::string consume_end(size_t at, size_t len, char sign, bool trim) {
    size_t p = at + len;
    if (sign == '-') {
      while (p < s_.size() && is_ws(s_[p])) ++p;
    } else if (sign != '+' && trim && p < s_.size() && s_[p] == '\n') {
      ++p;
    }
    std::string consumed = s_.substr(at, p - at);
    line_ += count_newlines(s_, at, p);
    pos_ = p;
    return consumed;
  }

  std::string lex_comment(size_t from) {
    for (size_t p = from; p + 1 < s_.size(); ++p) {
      if ((s_[p] == '-' || s_[p] == '+') && s_.compare(p + 1, 2, "#}") == 0) {
        line_ += count_newlines(s_, from, p);
        return consume_end(p, 3, s_[p], true);
      }
      if (s_.compare(p, 2, "#}") == 0) {
        line_ += count_newlines(s_, from, p);
        return consume_end(p, 2, 0, true);
      }
    }
    throw TemplateError(err_at("Missing end of comment tag", line_));
  }

  // `{% raw %}...{% endraw %}`: returns false when the block tag is not `raw`.
  bool try_raw(size_t after, bool& line_starting) {
    size_t p = after;
    while (p < s_.size() && is_ws(s_[p])) ++p;
    if (s_.compare(p, 3, "raw") != 0 || (p + 3 < s_.size() && is_ident(s_[p + 3]))) return false;
    p += 3;
    while (p < s_.size() && is_ws(s_[p])) ++p;
    size_t start;
    if (s_.compare(p, 3, "-%}") == 0) {
      start = p + 3;
      while (start < s_.size() && is_ws(s_[start])) ++start;
    } else if (s_.compare(p, 2, "%}") == 0) {
      start = p + 2;
    } else {
      return false;
    }
    line_starting = s_[start - 1] == '\n';
    for (size_t q = start; q + 1 < s_.size(); ++q) {
      if (s_[q] != '{' || s_[q + 1] != '%') continue;
      size_t r = q + 2;
      char sign = (r < s_.size() && (s_[r] == '-' || s_[r] == '+')) ? s_[r++] : 0;
      while (r < s_.size() && is_ws(s_[r])) ++r;
      if (s_.compare(r, 6, "endraw") != 0) continue;
      r += 6;
      while (r < s_.size() && is_ws(s_[r])) ++r;
      char end_sign = (r < s_.size() && (s_[r] == '-' || s_[r] == '+')) ? s_[r] : 0;
      size_t end_at = end_sign ? r + 1 : r;
      if (s_.compare(end_at, 2, "%}") != 0) continue;
      std::string text = apply_lstrip(s_.substr(start, q - start), sign, true, line_starting);
      int text_line = line_;
      line_ += count_newlines(s_, after, r);
      emit_data(text, text_line);
      std::string consumed = consume_end(r, end_sign ? 3 : 2, end_sign, true);
      line_starting = !consumed.empty() && consumed.back() == '\n';
      return true;
    }
    throw TemplateError(err_at("Missing end of raw directive", line_));
  }

  std::string lex_tag(size_t from, bool block) {
    toks_.push_back({block ? Token::Kind::BlockBegin : Token::Kind::VarBegin, "", line_});
    std::vector<char> balance;
    size_t p = from;
    const char* end = block ? "%}" : "}}";
    while (true) {
      if (p >= s_.size()) throw TemplateError(err_at(block ? "unexpected end of template, expected '%}'" : "unexpected end of template, expected '}}'", line_));
      char c = s_[p];
      if (balance.empty()) {
        if ((c == '-' || (block && c == '+')) && s_.compare(p + 1, 2, end) == 0) {
          toks_.push_back({block ? Token::Kind::BlockEnd : Token::Kind::VarEnd, "", line_});
          return consume_end(p, 3, c, block);
        }
        if (s_.compare(p, 2, end) == 0) {
          toks_.push_back({block ? Token::Kind::BlockEnd : Token::Kind::VarEnd, "", line_});
          return consume_end(p, 2, 0, block);
        }
      }
      if (is_ws(c)) {
        if (c == '\n') ++line_;
        ++p;
        continue;
      }
      if (is_digit(c)) {
        p = lex_number(p);
        continue;
      }
      if (is_ident_start(c)) {
        size_t q = p;
        while (q < s_.size() && is_ident(s_[q])) ++q;
        toks_.push_back({Token::Kind::Name, s_.substr(p, q - p), line_});
        p = q;
        continue;
      }
      if (c == '\'' || c == '"') {
        size_t q = p + 1;
        while (q < s_.size() && s_[q] != c) q += s_[q] == '\\' ? 2 : 1;
        if (q >= s_.size()) throw TemplateError(err_at("unexpected end of string literal", line_));
        int start_line = line_;
        line_ += count_newlines(s_, p, q);
        toks_.push_back({Token::Kind::String, unescape(s_.substr(p + 1, q - p - 1), start_line), start_line});
        p = q + 1;
        continue;
      }
      static const char* two[] = {"//", "**", "==", "!=", ">=", "<="};
      bool matched = false;
      for (const char* op : two) {
        if (s_.compare(p, 2, op) == 0) {
          toks_.push_back({Token::Kind::Op, op, line_});
          p += 2;
          matched = true;
          break;
        }
      }
      if (matched) continue;
      if (std::strchr("+-/*%~[](){}><=.:|,;", c)) {
        if (c == '(' || c == '[' || c == '{') balance.push_back(c);
        if (c == ')' || c == ']' || c == '}') {
          char want = c == ')' ? '(' : c == ']' ? '[' : '{';
          if (balance.empty() || balance.back() != want)
            throw TemplateError(err_at(std::string("unexpected '") + c + "'", line_));
          balance.pop_back();
        }
        toks_.push_back({Token::Kind::Op, std::string(1, c), line_});
        ++p;
        continue;
      }
      throw TemplateError(err_at(std::string("unexpected char '") + c + "'", line_));
    }
  }

  // Numbers follow jinja2's lexer: floats first (`1.5`, `1e3`, `1_0.5`), then
  // integers `0x1f` / `0o17` / `0b101` / `1_000` / `0`; a leading zero cannot
  // start a longer decimal (`007` lexes as `00` then `7`, which fails to parse).
  size_t lex_number(size_t p) {
    auto digit_run = [&](size_t r, int base) {  // (_?digit)+ with single underscores; returns end
      auto ok = [&](char c) {
        unsigned char u = static_cast<unsigned char>(c);
        int v = std::isdigit(u) ? c - '0' : std::isxdigit(u) ? std::tolower(u) - 'a' + 10 : 99;
        return v < base;
      };
      size_t q = r;
      while (q < s_.size()) {
        if (ok(s_[q])) ++q;
        else if (s_[q] == '_' && q > r && q + 1 < s_.size() && ok(s_[q + 1])) ++q;
        else break;
      }
      return q;
    };
    auto emit = [&](Token::Kind k, size_t from, size_t to) {
      std::string text;
      for (size_t i = from; i < to; ++i)
        if (s_[i] != '_') text.push_back(s_[i]);
      toks_.push_back({k, text, line_});
      return to;
    };
    bool after_dot = p > 0 && s_[p - 1] == '.';  // `x.0.1` is attribute access, not a float
    if (!after_dot) {
      size_t q = digit_run(p, 10);
      size_t frac = q;
      if (q + 1 < s_.size() && s_[q] == '.' && std::isdigit(static_cast<unsigned char>(s_[q + 1]))) frac = digit_run(q + 1, 10);
      size_t e = frac;
      if (e < s_.size() && (s_[e] == 'e' || s_[e] == 'E')) {
        size_t r = e + 1;
        if (r < s_.size() && (s_[r] == '+' || s_[r] == '-')) ++r;
        if (r < s_.size() && std::isdigit(static_cast<unsigned char>(s_[r]))) return emit(Token::Kind::Float, p, digit_run(r, 10));
      }
      if (frac != q) return emit(Token::Kind::Float, p, frac);
    }
    if (s_[p] == '0' && p + 1 < s_.size() && std::strchr("xXoObB", s_[p + 1])) {
      char kind = static_cast<char>(std::tolower(static_cast<unsigned char>(s_[p + 1])));
      int base = kind == 'x' ? 16 : kind == 'o' ? 8 : 2;
      size_t start = p + 2 + (p + 2 < s_.size() && s_[p + 2] == '_' ? 1 : 0);
      size_t q = digit_run(start, base);
      if (q > start) {
        unsigned long long v = 0;
        for (size_t i = start; i < q; ++i) {
          if (s_[i] == '_') continue;
          unsigned char u = static_cast<unsigned char>(s_[i]);
          int d = std::isdigit(u) ? s_[i] - '0' : std::tolower(u) - 'a' + 10;
          if (v > (~0ULL >> 1) / static_cast<unsigned>(base)) throw TemplateError(err_at("integer literal out of range", line_));
          v = v * base + d;
        }
        toks_.push_back({Token::Kind::Int, std::to_string(v), line_});
        return q;
      }
    }
    if (s_[p] == '0') {
      size_t q = p + 1;
      while (q < s_.size() && (s_[q] == '0' || (s_[q] == '_' && q + 1 < s_.size() && s_[q + 1] == '0'))) ++q;
      return emit(Token::Kind::Int, p, q);
    }
    return emit(Token::Kind::Int, p, digit_run(p, 10));
  }

  std::string s_;
  size_t pos_ = 0;
  int line_ = 1;
  std::vector<Token> toks_;
};

// jinja2 normalises \r\n and \r to \n and drops one trailing newline.
std::string normalize(const std::string& src) {
  std::string out;
  out.reserve(src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
    } else {
      out.push_back(src[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

std::vector<Token> tokenize(const std::string& source) { return Lexer(normalize(source)).run(); }

}  // namespace lorax::jinja
