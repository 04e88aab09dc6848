// Python str semantics (split, strip, case mapping, formatting) for the
// methods and filters templates call on strings.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "tokenizer/jinja/support.h"
#include "tokenizer/jinja/utf8.h"

namespace lorax::jinja {

namespace {
// Pieces of a split become list items: bounded like the list they make.
void check_pieces(size_t n) { RenderBudget::check(RenderBudget::times(n, sizeof(Value))); }
}  // namespace

std::vector<std::string> split_ws(const std::string& s, int64_t maxsplit) {
  std::u32string u = utf8::decode(s);
  std::vector<std::string> out;
  size_t i = 0;
  while (i < u.size()) {
    while (i < u.size() && utf8::is_space(u[i])) ++i;
    if (i >= u.size()) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
      size_t e = u.size();
      while (e > i && utf8::is_space(u[e - 1])) --e;
      out.push_back(utf8::encode(u.substr(i, e - i)));
      break;
    }
    size_t j = i;
    while (j < u.size() && !utf8::is_space(u[j])) ++j;
    out.push_back(utf8::encode(u.substr(i, j - i)));
    check_pieces(out.size());
    i = j;
  }
  return out;
}

std::vector<std::string> split_sep(const std::string& s, const std::string& sep, int64_t maxsplit) {
  if (sep.empty()) throw TemplateError("empty separator");
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) break;
    size_t p = s.find(sep, start);
    if (p == std::string::npos) break;
    out.push_back(s.substr(start, p - start));
    check_pieces(out.size());
    start = p + sep.size();
  }
  out.push_back(s.substr(start));
  return out;
}

std::vector<std::string> rsplit_sep(const std::string& s, const std::string& sep, int64_t maxsplit) {
  if (sep.empty()) throw TemplateError("empty separator");
  std::vector<std::string> out;
  size_t end = s.size();
  while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
    if (end < sep.size()) break;
    size_t p = s.rfind(sep, end - sep.size());
    if (p == std::string::npos) break;
    out.push_back(s.substr(p + sep.size(), end - p - sep.size()));
    check_pieces(out.size());
    end = p;
  }
  out.push_back(s.substr(0, end));
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<std::string> splitlines(const std::string& s, bool keepends) {
  std::u32string u = utf8::decode(s);
  std::vector<std::string> out;
  size_t start = 0, i = 0;
  while (i < u.size()) {
    char32_t c = u[i];
    bool brk = c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d || c == 0x1e ||
               c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!brk) {
      ++i;
      continue;
    }
    size_t eol = i + 1;
    if (c == '\r' && eol < u.size() && u[eol] == '\n') ++eol;
    out.push_back(utf8::encode(u.substr(start, (keepends ? eol : i) - start)));
    check_pieces(out.size());
    start = i = eol;
  }
  if (start < u.size()) out.push_back(utf8::encode(u.substr(start)));
  return out;
}

std::string replace_all(const std::string& s, const std::string& old, const std::string& rep, int64_t count) {
  std::string out;
  if (old.empty()) {
    // Python inserts the replacement between every character.
    std::u32string u = utf8::decode(s);
    int64_t n = 0;
    for (size_t i = 0; i <= u.size(); ++i) {
      if (count < 0 || n < count) {
        out += rep;
        ++n;
      }
      if (i < u.size()) utf8::append(out, u[i]);
      RenderBudget::check(out.size());
    }
    return out;
  }
  size_t start = 0;
  int64_t n = 0;
  while (count < 0 || n < count) {
    size_t p = s.find(old, start);
    if (p == std::string::npos) break;
    out += s.substr(start, p - start) + rep;
    RenderBudget::check(out.size());
    start = p + old.size();
    ++n;
  }
  return out + s.substr(start);
}

std::string map_case(const std::string& s, bool upper) {
  std::u32string u = utf8::decode(s);
  std::u32string out;
  for (size_t i = 0; i < u.size(); ++i) {
    if (!upper && u[i] == 0x03A3) {
      // Python's Final_Sigma rule: a capital sigma ending a word lowers to 'ς'.
      bool after_letter = i > 0 && utf8::is_cased_letter(u[i - 1]);
      bool before_letter = i + 1 < u.size() && utf8::is_cased_letter(u[i + 1]);
      out.push_back(after_letter && !before_letter ? 0x03C2 : 0x03C3);
      continue;
    }
    out += upper ? utf8::upper_full(u[i]) : utf8::lower_full(u[i]);
  }
  return utf8::encode(out);
}

// str.capitalize(): first character upper-cased, the rest lower-cased.
std::string capitalize(const std::string& s) {
  std::u32string u = utf8::decode(s);
  if (u.empty()) return "";
  return utf8::encode(utf8::upper_full(u[0])) + map_case(utf8::encode(u.substr(1)), false);
}

// Python str.title(): a cased letter after an uncased character starts a word.
std::string py_title(const std::string& s) {
  std::u32string u = utf8::decode(s), out;
  bool prev_cased = false;
  for (size_t i = 0; i < u.size(); ++i) {
    char32_t c = u[i];
    bool cased = utf8::is_cased_letter(c);
    if (cased && prev_cased && c == 0x03A3)  // Final_Sigma, as in lower()
      out.push_back(i + 1 < u.size() && utf8::is_cased_letter(u[i + 1]) ? 0x03C3 : 0x03C2);
    else if (cased)
      out += prev_cased ? utf8::lower_full(c) : utf8::upper_full(c);
    else
      out.push_back(c);
    prev_cased = cased;
  }
  return utf8::encode(out);
}

// jinja2's title filter: words start after whitespace, '-', and opening
// brackets; each word is word[0].upper() + word[1:].lower().
std::string jinja_title(const std::string& s) {
  std::u32string u = utf8::decode(s);
  std::string out;
  size_t i = 0;
  auto is_sep = [](char32_t c) { return utf8::is_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<'; };
  while (i < u.size()) {
    size_t j = i;
    bool sep = is_sep(u[i]);
    while (j < u.size() && is_sep(u[j]) == sep) ++j;
    std::u32string part = u.substr(i, j - i);
    if (sep)
      out += utf8::encode(part);
    else
      out += utf8::encode(utf8::upper_full(part[0])) + map_case(utf8::encode(part.substr(1)), false);
    i = j;
  }
  return out;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

// Python str.format with plain `{}`, `{0}` and `{name}` fields (no format specs).
std::string py_format(const std::string& fmt, std::vector<Value>& args, Kwargs& kwargs) {
  std::string out;
  size_t auto_idx = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    char c = fmt[i];
    if (c == '{' && i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out.push_back('{');
      ++i;
    } else if (c == '}' && i + 1 < fmt.size() && fmt[i + 1] == '}') {
      out.push_back('}');
      ++i;
    } else if (c == '{') {
      size_t e = fmt.find('}', i);
      if (e == std::string::npos) throw TemplateError("Single '{' encountered in format string");
      std::string field = fmt.substr(i + 1, e - i - 1);
      if (field.find_first_of(":!.[") != std::string::npos)
        throw TemplateError("unsupported format field '{" + field + "}'");
      const Value* v = nullptr;
      if (field.empty()) {
        if (auto_idx >= args.size()) throw TemplateError("Replacement index out of range for positional args tuple");
        v = &args[auto_idx++];
      } else if (std::all_of(field.begin(), field.end(), ::isdigit)) {
        size_t k = field.size() > 9 ? args.size() : std::stoul(field);  // more digits than any argument count
        if (k >= args.size()) throw TemplateError("Replacement index out of range for positional args tuple");
        v = &args[k];
      } else {
        for (auto& [k, val] : kwargs)
          if (k == field) v = &val;
        if (!v) throw TemplateError("KeyError: '" + field + "'");
      }
      out += to_str(*v);
      RenderBudget::check(out.size());
      i = e;
    } else if (c == '}') {
      throw TemplateError("Single '}' encountered in format string");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// Python's printf-style `fmt % args` for the conversions templates use
// (%s %r %d %i %f %F %e %g %x %X %o %c %%, flags, width, precision, %(name)s).
std::string percent_format(const std::string& fmt, const Value& rhs) {
  // A tuple supplies the arguments; anything else is the single argument, and
  // mapping-like values (dict, list) also skip the "not all converted" check.
  std::vector<Value> args;
  const Dict* mapping = rhs.type == T::Dict ? rhs.dict.get() : nullptr;
  bool mapping_like = rhs.type == T::Dict || rhs.type == T::List || rhs.is_undefined();
  if (rhs.type == T::Tuple) args = *rhs.list;
  else args.push_back(rhs);
  size_t next = 0;
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out.push_back(fmt[i]);
      continue;
    }
    if (++i >= fmt.size()) throw TemplateError("incomplete format");
    const Value* arg = nullptr;
    if (fmt[i] == '(') {
      size_t e = fmt.find(')', i);
      if (e == std::string::npos || !mapping) throw TemplateError("format requires a mapping");
      arg = mapping->find(fmt.substr(i + 1, e - i - 1));
      if (!arg) throw TemplateError("KeyError: '" + fmt.substr(i + 1, e - i - 1) + "'");
      i = e + 1;
    }
    std::string flags;
    while (i < fmt.size() && std::string("-+ #0").find(fmt[i]) != std::string::npos) flags.push_back(fmt[i++]);
    std::string width, prec;
    while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i]))) width.push_back(fmt[i++]);
    bool has_prec = false;
    if (i < fmt.size() && fmt[i] == '.') {
      has_prec = true;
      ++i;
      while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i]))) prec.push_back(fmt[i++]);
    }
    if (i >= fmt.size()) throw TemplateError("incomplete format");
    // Python pads to any width (until memory runs out); a template gets an error instead.
    if (width.size() > 6 || prec.size() > 6) throw TemplateError("format width or precision too large");
    char conv = fmt[i];
    if (conv == '%') {
      out.push_back('%');
      continue;
    }
    if (!arg) {
      if (next >= args.size()) throw TemplateError("not enough arguments for format string");
      arg = &args[next++];
    }
    std::string piece;
    if (conv == 's' || conv == 'r') {
      piece = conv == 's' ? to_str(*arg) : to_repr(*arg);
      if (has_prec) {
        std::u32string u = utf8::decode(piece);
        piece = utf8::encode(u.substr(0, std::stoul(prec.empty() ? "0" : prec)));
      }
      size_t w = width.empty() ? 0 : std::stoul(width), len = utf8::length(piece);
      if (len < w) {
        std::string pad(w - len, ' ');
        piece = flags.find('-') != std::string::npos ? piece + pad : pad + piece;
      }
    } else if (std::string("diouxXeEfFgGc").find(conv) != std::string::npos) {
      if (arg->is_undefined()) fail_undefined(*arg);
      if (!arg->is_number()) throw TemplateError(std::string("%") + conv + " format: a real number is required, not " + arg->type_name());
      std::string spec = "%" + flags + width + (has_prec ? "." + prec : "");
      char buf[512];
      if (conv == 'c') {
        if (arg->type == T::Float) throw TemplateError("%c requires an int or a unicode character, not float");
        const int64_t c = arg->type == T::Bool ? arg->boolean : arg->integer;
        if (c < 0 || c > 0x10FFFF) throw TemplateError("%c arg not in range(0x110000)");
        utf8::append(piece, static_cast<char32_t>(c));
      } else if (std::string("diouxX").find(conv) != std::string::npos) {
        if (arg->type == T::Float && !(std::abs(arg->real) < 9.2e18))  // NaN and inf included
          throw TemplateError(std::string("%") + conv + " format: number out of range");
        long long v = arg->type == T::Float ? static_cast<long long>(arg->real) : (arg->type == T::Bool ? arg->boolean : arg->integer);
        std::snprintf(buf, sizeof buf, (spec + "ll" + (conv == 'i' || conv == 'u' ? 'd' : conv)).c_str(), v);
        piece = buf;
      } else {
        std::snprintf(buf, sizeof buf, (spec + conv).c_str(), arg->as_double());
        piece = buf;
      }
    } else {
      throw TemplateError(std::string("unsupported format character '") + conv + "'");
    }
    out += piece;
    RenderBudget::check(out.size());
  }
  if (!mapping_like && next < args.size()) throw TemplateError("not all arguments converted during string formatting");
  return out;
}

std::u32string chars_arg(const Value& v, std::u32string& storage, bool& given) {
  given = !(v.is_none() || v.is_undefined());
  if (given) storage = utf8::decode(need_str(v, "strip arg"));
  return storage;
}

Value str_list(const std::vector<std::string>& parts) {
  List l;
  for (const auto& p : parts) l.push_back(S(p));
  return Value::from_list(std::move(l));
}

bool starts_or_ends(const std::string& s, const Value& what, bool start) {
  auto one = [&](const std::string& p) {
    if (p.size() > s.size()) return false;
    return start ? s.compare(0, p.size(), p) == 0 : s.compare(s.size() - p.size(), p.size(), p) == 0;
  };
  if (what.type == T::Tuple) {
    for (const auto& p : *what.list)
      if (one(need_str(p, "tuple for startswith/endswith"))) return true;
    return false;
  }
  return one(need_str(what, "startswith/endswith arg"));
}

}  // namespace lorax::jinja
