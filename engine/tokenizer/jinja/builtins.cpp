#include "tokenizer/jinja/builtins.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <ctime>
#include <map>
#include <optional>
#include <set>

#include "tokenizer/jinja/error.h"
#include "tokenizer/jinja/utf8.h"

namespace lorax::jinja {

using T = Value::Type;

[[noreturn]] void fail_undefined(const Value& u) {
  throw TemplateError(u.str.empty() ? "value is undefined" : u.str);
}

namespace {

// ---------- argument binding ----------
// Binds positional and keyword arguments to named parameters like a Python
// signature; `spec` holds each parameter's name and default.
struct Param {
  const char* name;
  Value def;
};

std::vector<Value> bind(const std::string& fname, std::vector<Value>& args, Kwargs& kwargs,
                        const std::vector<Param>& spec) {
  if (args.size() > spec.size())
    throw TemplateError(fname + "() takes at most " + std::to_string(spec.size()) + " argument(s) (" +
                        std::to_string(args.size()) + " given)");
  std::vector<Value> out;
  out.reserve(spec.size());
  for (size_t i = 0; i < spec.size(); ++i) out.push_back(i < args.size() ? args[i] : spec[i].def);
  for (auto& [k, v] : kwargs) {
    size_t i = 0;
    while (i < spec.size() && k != spec[i].name) ++i;
    if (i == spec.size()) throw TemplateError(fname + "() got an unexpected keyword argument '" + k + "'");
    if (i < args.size()) throw TemplateError(fname + "() got multiple values for argument '" + k + "'");
    out[i] = v;
  }
  return out;
}

Value S(std::string s) { return Value::from_string(std::move(s)); }
Value I(int64_t i) { return Value::from_int(i); }
Value B(bool b) { return Value::from_bool(b); }
Value N() { return Value::none(); }

int64_t to_index(const Value& v, const char* what) {
  if (v.type == T::Int) return v.integer;
  if (v.type == T::Bool) return v.boolean;
  throw TemplateError(std::string(what) + " must be an integer, not " + v.type_name());
}

const std::string& need_str(const Value& v, const std::string& what) {
  if (v.type != T::String) throw TemplateError(what + " must be str, not " + v.type_name());
  return v.str;
}

std::string object_type(const Value& v) { return v.type_name() + " object"; }

Value missing_attr(const Value& obj, const std::string& name) {
  return Value::undefined("'" + object_type(obj) + "' has no attribute '" + name + "'");
}

// ---------- string helpers ----------
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
    }
    return out;
  }
  size_t start = 0;
  int64_t n = 0;
  while (count < 0 || n < count) {
    size_t p = s.find(old, start);
    if (p == std::string::npos) break;
    out += s.substr(start, p - start) + rep;
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
        size_t k = std::stoul(field);
        if (k >= args.size()) throw TemplateError("Replacement index out of range for positional args tuple");
        v = &args[k];
      } else {
        for (auto& [k, val] : kwargs)
          if (k == field) v = &val;
        if (!v) throw TemplateError("KeyError: '" + field + "'");
      }
      out += to_str(*v);
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
  bool mapping_like = rhs.type == T::Dict || rhs.type == T::List;
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
        utf8::append(piece, static_cast<char32_t>(arg->as_double()));
      } else if (std::string("diouxX").find(conv) != std::string::npos) {
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

Value method(const std::string& name, std::function<Value(std::vector<Value>&, Kwargs&)> fn) {
  return Value::function(name, std::move(fn));
}

Value unsafe_method(const Value& obj, const std::string& name) {
  std::string msg = "access to attribute '" + name + "' of '" + obj.type_name() + "' object is unsafe.";
  return method(name, [msg](std::vector<Value>&, Kwargs&) -> Value { throw TemplateError(msg); });
}

Value string_method(const Value& obj, const std::string& name) {
  const std::string s = obj.str;
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    bool left = name != "rstrip", right = name != "lstrip";
    return method(name, [s, left, right, name](std::vector<Value>& a, Kwargs& k) {
      auto b = bind(name, a, k, {{"chars", N()}});
      std::u32string storage;
      bool given;
      chars_arg(b[0], storage, given);
      return S(utf8::strip(s, left, right, given ? &storage : nullptr));
    });
  }
  if (name == "split" || name == "rsplit") {
    bool right = name == "rsplit";
    return method(name, [s, right, name](std::vector<Value>& a, Kwargs& k) {
      auto b = bind(name, a, k, {{"sep", N()}, {"maxsplit", I(-1)}});
      int64_t maxsplit = to_index(b[1], "maxsplit");
      if (b[0].is_none()) {
        if (right && maxsplit >= 0) throw TemplateError("rsplit() with maxsplit and no separator is unsupported");
        return str_list(split_ws(s, maxsplit));
      }
      const std::string& sep = need_str(b[0], "sep");
      return str_list(right ? rsplit_sep(s, sep, maxsplit) : split_sep(s, sep, maxsplit));
    });
  }
  if (name == "startswith" || name == "endswith") {
    bool start = name == "startswith";
    return method(name, [s, start, name](std::vector<Value>& a, Kwargs& k) {
      auto b = bind(name, a, k, {{"prefix", Value()}});
      if (b[0].is_undefined()) throw TemplateError(name + "() takes at least 1 argument (0 given)");
      return B(starts_or_ends(s, b[0], start));
    });
  }
  if (name == "upper" || name == "lower")
    return method(name, [s, name](std::vector<Value>& a, Kwargs& k) {
      bind(name, a, k, {});
      return S(map_case(s, name == "upper"));
    });
  if (name == "title")
    return method(name, [s](std::vector<Value>& a, Kwargs& k) {
      bind("title", a, k, {});
      return S(py_title(s));
    });
  if (name == "capitalize")
    return method(name, [s](std::vector<Value>& a, Kwargs& k) {
      bind("capitalize", a, k, {});
      return S(capitalize(s));
    });
  if (name == "replace")
    return method(name, [s](std::vector<Value>& a, Kwargs& k) {
      auto b = bind("replace", a, k, {{"old", Value()}, {"new", Value()}, {"count", I(-1)}});
      return S(replace_all(s, need_str(b[0], "replace() arg 1"), need_str(b[1], "replace() arg 2"),
                           to_index(b[2], "count")));
    });
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count")
    return method(name, [s, name](std::vector<Value>& a, Kwargs& k) {
      auto b = bind(name, a, k, {{"sub", Value()}});
      const std::string& sub = need_str(b[0], name + "() arg");
      if (name == "count") {
        if (sub.empty()) return I(static_cast<int64_t>(utf8::length(s)) + 1);
        int64_t n = 0;
        for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
        return I(n);
      }
      size_t p = (name[0] == 'r') ? s.rfind(sub) : s.find(sub);
      if (p == std::string::npos) {
        if (name.find("index") != std::string::npos) throw TemplateError("substring not found");
        return I(-1);
      }
      return I(static_cast<int64_t>(utf8::length(s.substr(0, p))));
    });
  if (name == "join")
    return method(name, [s](std::vector<Value>& a, Kwargs& k) {
      auto b = bind("join", a, k, {{"iterable", Value()}});
      std::string out;
      bool first = true;
      for (const auto& v : iterate(b[0])) {
        if (!first) out += s;
        first = false;
        out += need_str(v, "sequence item");
      }
      return S(out);
    });
  if (name == "format")
    return method(name, [s](std::vector<Value>& a, Kwargs& k) { return S(py_format(s, a, k)); });
  if (name == "splitlines")
    return method(name, [s](std::vector<Value>& a, Kwargs& k) {
      auto b = bind("splitlines", a, k, {{"keepends", B(false)}});
      return str_list(splitlines(s, b[0].truthy()));
    });
  if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" || name == "isupper" ||
      name == "islower")
    return method(name, [s, name](std::vector<Value>& a, Kwargs& k) {
      bind(name, a, k, {});
      std::u32string u = utf8::decode(s);
      if (u.empty()) return B(false);
      if (name == "isupper" || name == "islower") {
        bool any = false;
        for (char32_t c : u) {
          if (!utf8::is_cased_letter(c)) continue;
          any = true;
          if ((name == "isupper") != (utf8::to_lower(c) != c)) return B(false);
        }
        return B(any);
      }
      for (char32_t c : u) {
        bool digit = c >= '0' && c <= '9';
        bool alpha = utf8::is_alpha_ascii(c) || (c >= 0x80 && utf8::is_cased_letter(c));
        bool ok = name == "isdigit" ? digit : name == "isalpha" ? alpha : name == "isalnum" ? (digit || alpha) : utf8::is_space(c);
        if (!ok) return B(false);
      }
      return B(true);
    });
  return missing_attr(obj, name);
}

Value dict_method(const Value& obj, const std::string& name) {
  auto d = obj.dict;
  if (name == "items" || name == "keys" || name == "values")
    return method(name, [d, name](std::vector<Value>& a, Kwargs& k) {
      bind(name, a, k, {});
      List out;
      for (const auto& [key, v] : d->items) {
        if (name == "items")
          out.push_back(Value::from_list({key, v}, true));
        else
          out.push_back(name == "keys" ? key : v);
      }
      return Value::from_list(std::move(out));
    });
  if (name == "get")
    return method(name, [d](std::vector<Value>& a, Kwargs& k) {
      if (!k.empty()) throw TemplateError("get() takes no keyword arguments");
      if (a.empty() || a.size() > 2) throw TemplateError("get expected 1 or 2 arguments");
      const Value* v = d->find(a[0]);
      return v ? *v : (a.size() == 2 ? a[1] : N());
    });
  if (name == "copy")
    return method(name, [d](std::vector<Value>&, Kwargs&) { return Value::from_dict(*d); });
  static const std::set<std::string> mutating = {"pop", "popitem", "setdefault", "update", "clear"};
  if (mutating.count(name)) return unsafe_method(obj, name);
  return Value::undefined();
}

Value list_method(const Value& obj, const std::string& name) {
  auto l = obj.list;
  if (name == "index" || name == "count")
    return method(name, [l, name](std::vector<Value>& a, Kwargs& k) {
      auto b = bind(name, a, k, {{"value", Value()}});
      int64_t n = 0;
      for (size_t i = 0; i < l->size(); ++i) {
        if (!equals((*l)[i], b[0])) continue;
        if (name == "index") return I(static_cast<int64_t>(i));
        ++n;
      }
      if (name == "index") throw TemplateError("value is not in list");
      return I(n);
    });
  static const std::set<std::string> mutating = {"append", "extend", "insert", "pop", "remove", "clear", "sort",
                                                 "reverse"};
  if (obj.type == T::List && mutating.count(name)) return unsafe_method(obj, name);
  return missing_attr(obj, name);
}

// ---------- filters ----------
// Resolves `attribute=` paths such as "a.b" or "a.0" the way jinja2's make_attrgetter does.
Value attr_path(const Value& item, const Value& attribute) {
  if (attribute.type == T::Int) return get_item(item, attribute);
  std::string path = need_str(attribute, "attribute");
  Value cur = item;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
    cur = get_item(cur, numeric ? I(std::stoll(part)) : S(part));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

std::string soft_str(const Value& v) { return to_str(v); }

Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.type == T::String) return S(map_case(v.str, false));
  return v;
}

void sort_values(List& items, bool reverse, const std::function<Value(const Value&)>& key) {
  std::vector<std::pair<Value, Value>> keyed;
  for (auto& v : items) keyed.emplace_back(key(v), v);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
    return reverse ? compare(b.first, a.first) < 0 : compare(a.first, b.first) < 0;
  });
  items.clear();
  for (auto& kv : keyed) items.push_back(kv.second);
}

std::string indent_text(const std::string& input, const Value& width, bool first, bool blank) {
  std::string ind = width.type == T::String ? width.str : std::string(to_index(width, "width"), ' ');
  std::vector<std::string> lines = splitlines(input + "\n", false);
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) rv += (i ? "\n" + ind : "") + lines[i];
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) rv += "\n" + (lines[i].empty() ? "" : ind + lines[i]);
  }
  return first ? ind + rv : rv;
}

double py_round(double x, int64_t digits, const std::string& method) {
  double m = std::pow(10.0, static_cast<double>(digits));
  double y = x * m;
  if (method == "ceil") return std::ceil(y) / m;
  if (method == "floor") return std::floor(y) / m;
  if (method != "common") throw TemplateError("method must be 'common', 'ceil' or 'floor'");
  double r = std::nearbyint(y);  // ties to even, as Python's round()
  return r / m;
}

std::optional<int64_t> parse_int(std::string s, int base) {
  s = utf8::strip(s, true, true, nullptr);
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  if (s.empty()) return std::nullopt;
  try {
    size_t used = 0;
    long long v = std::stoll(s, &used, base);
    if (used != s.size()) return std::nullopt;
    return v;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<double> parse_float(std::string s) {
  s = utf8::strip(s, true, true, nullptr);
  if (s.empty()) return std::nullopt;
  try {
    size_t used = 0;
    double v = std::stod(s, &used);
    if (used != s.size()) return std::nullopt;
    return v;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::string ascii_json(const std::string& s) {
  std::string out;
  for (char32_t c : utf8::decode(s)) {
    char buf[16];
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else if (c < 0x10000) {
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      unsigned v = static_cast<unsigned>(c) - 0x10000;
      std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
      out += buf;
    }
  }
  return out;
}

Value do_tojson(const Value& x, std::vector<Value>& a, Kwargs& k) {
  auto b = bind("tojson", a, k, {{"ensure_ascii", B(false)}, {"indent", N()}, {"separators", N()}, {"sort_keys", B(false)}});
  DumpOptions o;
  if (b[1].type == T::String) {
    o.indent_is_string = true;
    o.indent_str = b[1].str;
  } else if (!b[1].is_none()) {
    o.indent = static_cast<int>(std::max<int64_t>(0, to_index(b[1], "indent")));
  }
  if (o.indent >= 0 || o.indent_is_string) o.item_sep = ",";
  if (!b[2].is_none()) {
    if (!b[2].is_sequence() || b[2].list->size() != 2) throw TemplateError("separators must be a (item, key) pair");
    o.item_sep = need_str((*b[2].list)[0], "separator");
    o.key_sep = need_str((*b[2].list)[1], "separator");
  }
  o.sort_keys = b[3].truthy();
  std::string out = dump_json(x, o);
  return S(b[0].truthy() ? ascii_json(out) : out);
}

using FilterFn = std::function<Value(const Value&, std::vector<Value>&, Kwargs&)>;

Value select_common(const Value& x, std::vector<Value>& a, Kwargs& k, bool attr, bool want) {
  List out;
  std::optional<Value> attribute;
  size_t pos = 0;
  if (attr) {
    if (a.empty()) throw TemplateError("selectattr/rejectattr needs an attribute name");
    attribute = a[0];
    pos = 1;
  }
  std::string test;
  std::vector<Value> targs;
  if (pos < a.size()) {
    test = need_str(a[pos], "test name");
    targs.assign(a.begin() + pos + 1, a.end());
  }
  if (!test.empty() && !has_test(test)) throw TemplateError("No test named '" + test + "'.");
  if (!x.truthy()) return Value::from_list({});  // jinja2 guards with `if value:`
  for (const auto& item : iterate(x)) {
    Value v = attribute ? attr_path(item, *attribute) : item;
    bool r;
    if (test.empty()) {
      r = v.truthy();
    } else {
      std::vector<Value> ta = targs;
      r = apply_test(test, v, ta, k);
    }
    if (r == want) out.push_back(item);
  }
  return Value::from_list(std::move(out));
}

const std::map<std::string, FilterFn>& filters() {
  static const std::map<std::string, FilterFn> table = [] {
    std::map<std::string, FilterFn> f;
    f["abs"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      bind("abs", a, k, {});
      if (x.type == T::Int || x.type == T::Bool) return I(std::llabs(x.type == T::Bool ? x.boolean : x.integer));
      if (x.type == T::Float) return Value::from_float(std::fabs(x.real));
      throw TemplateError("bad operand type for abs(): '" + x.type_name() + "'");
    };
    f["attr"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      auto b = bind("attr", a, k, {{"name", Value()}});
      return get_attr(x, need_str(b[0], "attribute name"));
    };
    f["batch"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      auto b = bind("batch", a, k, {{"linecount", Value()}, {"fill_with", N()}});
      int64_t n = to_index(b[0], "linecount");
      if (n <= 0) throw TemplateError("batch size must be positive");
      List out, cur;
      for (const auto& item : iterate(x)) {
        cur.push_back(item);
        if (static_cast<int64_t>(cur.size()) == n) {
          out.push_back(Value::from_list(std::move(cur)));
          cur.clear();
        }
      }
      if (!cur.empty()) {
        if (!b[1].is_none())
          while (static_cast<int64_t>(cur.size()) < n) cur.push_back(b[1]);
        out.push_back(Value::from_list(std::move(cur)));
      }
      return Value::from_list(std::move(out));
    };
    f["center"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      auto b = bind("center", a, k, {{"width", I(80)}});
      std::string s = soft_str(x);
      int64_t len = static_cast<int64_t>(utf8::length(s)), w = to_index(b[0], "width");
      if (w <= len) return S(s);
      // Python's str.center puts the odd extra space on the left when the width is odd.
      int64_t total = w - len, left = total / 2 + (total & w & 1);
      return S(std::string(left, ' ') + s + std::string(total - left, ' '));
    };
    f["pprint"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      bind("pprint", a, k, {});
      return S(to_repr(x));
    };
    f["truncate"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      auto b = bind("truncate", a, k, {{"length", I(255)}, {"killwords", B(false)}, {"end", S("...")}, {"leeway", I(5)}});
      if (x.type != T::String) {
        // jinja2 only measures len(s): short containers pass through, others fail.
        int64_t len = x.is_sequence() ? static_cast<int64_t>(x.list->size()) : x.is_dict() ? static_cast<int64_t>(x.dict->items.size()) : -1;
        if (len < 0) throw TemplateError("object of type '" + x.type_name() + "' has no len()");
        if (len <= to_index(b[0], "length") + to_index(b[3], "leeway")) return x;
        throw TemplateError("truncate filter expects a string");
      }
      std::u32string u = utf8::decode(x.str);
      std::u32string end = utf8::decode(soft_str(b[2]));
      int64_t length = to_index(b[0], "length"), leeway = to_index(b[3], "leeway");
      if (length < static_cast<int64_t>(end.size())) throw TemplateError("expected length >= len(end)");
      if (static_cast<int64_t>(u.size()) <= length + leeway) return S(utf8::encode(u));
      std::u32string head = u.substr(0, length - end.size());
      if (!b[1].truthy()) {
        size_t sp = head.rfind(U' ');
        if (sp != std::u32string::npos) head = head.substr(0, sp);
      }
      return S(utf8::encode(head + end));
    };
    f["capitalize"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      bind("capitalize", a, k, {});
      return S(capitalize(soft_str(x)));
    };
    f["default"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      auto b = bind("default", a, k, {{"default_value", S("")}, {"boolean", B(false)}});
      if (x.is_undefined() || (b[1].truthy() && !x.truthy())) return b[0];
      return x;
    };
    f["d"] = f["default"];
    f["dictsort"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      auto b = bind("dictsort", a, k, {{"case_sensitive", B(false)}, {"by", S("key")}, {"reverse", B(false)}});
      if (!x.is_dict()) throw TemplateError("dictsort filter expects a mapping");
      int pos = b[1].str == "key" ? 0 : b[1].str == "value" ? 1 : -1;
      if (pos < 0) throw TemplateError("You can only sort by either \"key\" or \"value\"");
      List items;
      for (const auto& [key, v] : x.dict->items) items.push_back(Value::from_list({key, v}, true));
      bool cs = b[0].truthy();
      sort_values(items, b[2].truthy(), [&](const Value& t) { return sort_key((*t.list)[pos], cs); });
      return Value::from_list(std::move(items));
    };
    f["escape"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      bind("escape", a, k, {});
      return S(html_escape(soft_str(x)));
    };
    f["e"] = f["escape"];
    f["forceescape"] = f["escape"];
    f["format"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      if (!a.empty() && !k.empty()) throw TemplateError("can't handle positional and keyword arguments at the same time");
      if (!k.empty()) {
        Dict d;
        for (auto& [key, v] : k) d.set(S(key), v);
        return S(percent_format(soft_str(x), Value::from_dict(std::move(d))));
      }
      return S(percent_format(soft_str(x), Value::from_list(a, true)));
    };
    f["first"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      bind("first", a, k, {});
      List items = iterate(x);
      return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
    };
    f["last"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      bind("last", a, k, {});
      List items = iterate(x);
      return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
    };
    f["float"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      auto b = bind("float", a, k, {{"default", Value::from_float(0.0)}});
      if (x.is_undefined()) fail_undefined(x);
      if (x.is_number()) return Value::from_float(x.as_double());
      if (x.type == T::String)
        if (auto d = parse_float(x.str)) return Value::from_float(*d);
      return b[0];
    };
    f["int"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      auto b = bind("int", a, k, {{"default", I(0)}, {"base", I(10)}});
      if (x.is_undefined()) fail_undefined(x);
      if (x.type == T::Int) return x;
      if (x.type == T::Bool) return I(x.boolean);
      if (x.type == T::Float) return I(static_cast<int64_t>(x.real));
      if (x.type == T::String) {
        if (auto i = parse_int(x.str, static_cast<int>(to_index(b[1], "base")))) return I(*i);
        if (auto d = parse_float(x.str)) return I(static_cast<int64_t>(*d));
      }
      return b[0];
    };
    f["items"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      bind("items", a, k, {});
      if (x.is_undefined()) return Value::from_list({});
      if (!x.is_dict()) throw TemplateError("Can only get item pairs from a mapping.");
      List out;
      for (const auto& [key, v] : x.dict->items) out.push_back(Value::from_list({key, v}, true));
      return Value::from_list(std::move(out));
    };
    f["indent"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      auto b = bind("indent", a, k, {{"width", I(4)}, {"first", B(false)}, {"blank", B(false)}});
      if (x.type != T::String) throw TemplateError("indent filter expects a string, not " + x.type_name());
      return S(indent_text(x.str, b[0], b[1].truthy(), b[2].truthy()));
    };
    f["join"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      auto b = bind("join", a, k, {{"d", S("")}, {"attribute", N()}});
      std::string sep = soft_str(b[0]), out;
      bool first = true;
      for (const auto& item : iterate(x)) {
        if (!first) out += sep;
        first = false;
        out += soft_str(b[1].is_none() ? item : attr_path(item, b[1]));
      }
      return S(out);
    };
    f["length"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      bind("length", a, k, {});
      switch (x.type) {
        case T::Undefined: return I(0);
        case T::String: return I(static_cast<int64_t>(utf8::length(x.str)));
        case T::List:
        case T::Tuple: return I(static_cast<int64_t>(x.list->size()));
        case T::Dict: return I(static_cast<int64_t>(x.dict->items.size()));
        default: throw TemplateError("object of type '" + x.type_name() + "' has no len()");
      }
    };
    f["count"] = f["length"];
    f["list"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      bind("list", a, k, {});
      return Value::from_list(iterate(x));
    };
    f["lower"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      bind("lower", a, k, {});
      return S(map_case(soft_str(x), false));
    };
    f["upper"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      bind("upper", a, k, {});
      return S(map_case(soft_str(x), true));
    };
    f["map"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      List out;
      const Value* attribute = nullptr;
      const Value* def = nullptr;
      for (auto& [key, v] : k) {
        if (key == "attribute") attribute = &v;
        else if (key == "default") def = &v;
      }
      if (!x.truthy()) return Value::from_list({});  // jinja2 guards with `if value:`
      if (attribute) {
        for (const auto& item : iterate(x)) {
          Value v = attr_path(item, *attribute);
          out.push_back(v.is_undefined() && def ? *def : v);
        }
        return Value::from_list(std::move(out));
      }
      if (a.empty()) throw TemplateError("map requires a filter argument");
      std::string name = need_str(a[0], "filter name");
      if (!has_filter(name)) throw TemplateError("No filter named '" + name + "'.");
      for (const auto& item : iterate(x)) {
        std::vector<Value> fa(a.begin() + 1, a.end());
        Kwargs fk = k;
        out.push_back(apply_filter(name, item, fa, fk));
      }
      return Value::from_list(std::move(out));
    };
    auto minmax = [](bool want_max) {
      return [want_max](const Value& x, std::vector<Value>& a, Kwargs& k) {
        auto b = bind(want_max ? "max" : "min", a, k, {{"case_sensitive", B(false)}, {"attribute", N()}});
        List items = iterate(x);
        if (items.empty()) return Value::undefined(std::string("No aggregated item, sequence was empty."));
        bool cs = b[0].truthy();
        auto key = [&](const Value& v) { return sort_key(b[1].is_none() ? v : attr_path(v, b[1]), cs); };
        Value best = items[0];
        for (size_t i = 1; i < items.size(); ++i) {
          int c = compare(key(items[i]), key(best));
          if (want_max ? c > 0 : c < 0) best = items[i];
        }
        return best;
      };
    };
    f["max"] = minmax(true);
    f["min"] = minmax(false);
    f["reject"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) { return select_common(x, a, k, false, false); };
    f["select"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) { return select_common(x, a, k, false, true); };
    f["rejectattr"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) { return select_common(x, a, k, true, false); };
    f["selectattr"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) { return select_common(x, a, k, true, true); };
    f["replace"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      auto b = bind("replace", a, k, {{"old", Value()}, {"new", Value()}, {"count", N()}});
      int64_t count = b[2].is_none() ? -1 : to_index(b[2], "count");
      return S(replace_all(soft_str(x), soft_str(b[0]), soft_str(b[1]), count));
    };
    f["reverse"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      bind("reverse", a, k, {});
      if (x.type == T::String) {
        std::u32string u = utf8::decode(x.str);
        std::reverse(u.begin(), u.end());
        return S(utf8::encode(u));
      }
      List items = iterate(x);
      std::reverse(items.begin(), items.end());
      return Value::from_list(std::move(items));
    };
    f["round"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      auto b = bind("round", a, k, {{"precision", I(0)}, {"method", S("common")}});
      if (!x.is_number()) throw TemplateError("round filter expects a number");
      // Python's round(int, n >= 0) keeps the int; ceil/floor divide, giving a float.
      if (x.type != T::Float && b[1].type == T::String && b[1].str == "common" && to_index(b[0], "precision") >= 0)
        return I(x.type == T::Bool ? x.boolean : x.integer);
      return Value::from_float(py_round(x.as_double(), to_index(b[0], "precision"), need_str(b[1], "method")));
    };
    f["safe"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      bind("safe", a, k, {});
      return x.type == T::String ? x : S(soft_str(x));
    };
    f["sort"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      auto b = bind("sort", a, k, {{"reverse", B(false)}, {"case_sensitive", B(false)}, {"attribute", N()}});
      List items = iterate(x);
      bool cs = b[1].truthy();
      sort_values(items, b[0].truthy(),
                  [&](const Value& v) { return sort_key(b[2].is_none() ? v : attr_path(v, b[2]), cs); });
      return Value::from_list(std::move(items));
    };
    f["string"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      bind("string", a, k, {});
      return S(soft_str(x));
    };
    f["sum"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      auto b = bind("sum", a, k, {{"attribute", N()}, {"start", I(0)}});
      Value total = b[1];
      for (const auto& item : iterate(x)) total = binary_op("+", total, b[0].is_none() ? item : attr_path(item, b[0]));
      return total;
    };
    f["title"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      bind("title", a, k, {});
      return S(jinja_title(soft_str(x)));
    };
    f["tojson"] = do_tojson;
    f["trim"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      auto b = bind("trim", a, k, {{"chars", N()}});
      std::u32string storage;
      bool given;
      chars_arg(b[0], storage, given);
      return S(utf8::strip(soft_str(x), true, true, given ? &storage : nullptr));
    };
    f["unique"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      auto b = bind("unique", a, k, {{"case_sensitive", B(false)}, {"attribute", N()}});
      List out, seen;
      for (const auto& item : iterate(x)) {
        Value key = sort_key(b[1].is_none() ? item : attr_path(item, b[1]), b[0].truthy());
        bool dup = false;
        for (const auto& s : seen) dup = dup || equals(s, key);
        if (dup) continue;
        seen.push_back(key);
        out.push_back(item);
      }
      return Value::from_list(std::move(out));
    };
    f["wordcount"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      bind("wordcount", a, k, {});
      // jinja2 counts runs of \w (letters, digits, underscore).
      int64_t n = 0;
      bool in_word = false;
      for (char32_t c : utf8::decode(soft_str(x))) {
        bool w = c == '_' || (c >= '0' && c <= '9') || utf8::is_alpha_ascii(c) || (c >= 0x80 && !utf8::is_space(c) && utf8::is_cased_letter(c));
        if (w && !in_word) ++n;
        in_word = w;
      }
      return I(n);
    };
    return f;
  }();
  return table;
}

// ---------- tests ----------
using TestFn = std::function<bool(const Value&, std::vector<Value>&)>;

const std::map<std::string, TestFn>& tests() {
  static const std::map<std::string, TestFn> table = [] {
    std::map<std::string, TestFn> t;
    auto arg = [](std::vector<Value>& a, const char* name) -> const Value& {
      if (a.empty()) throw TemplateError(std::string("test '") + name + "' needs an argument");
      return a[0];
    };
    t["defined"] = [](const Value& v, std::vector<Value>&) { return !v.is_undefined(); };
    t["undefined"] = [](const Value& v, std::vector<Value>&) { return v.is_undefined(); };
    t["none"] = [](const Value& v, std::vector<Value>&) { return v.is_none(); };
    t["boolean"] = [](const Value& v, std::vector<Value>&) { return v.type == T::Bool; };
    t["true"] = [](const Value& v, std::vector<Value>&) { return v.type == T::Bool && v.boolean; };
    t["false"] = [](const Value& v, std::vector<Value>&) { return v.type == T::Bool && !v.boolean; };
    t["integer"] = [](const Value& v, std::vector<Value>&) { return v.type == T::Int; };
    t["float"] = [](const Value& v, std::vector<Value>&) { return v.type == T::Float; };
    t["number"] = [](const Value& v, std::vector<Value>&) { return v.is_number(); };
    t["string"] = [](const Value& v, std::vector<Value>&) { return v.type == T::String; };
    t["mapping"] = [](const Value& v, std::vector<Value>&) { return v.type == T::Dict; };
    // Undefined is iterable (empty) in jinja2, but not a sequence.
    t["iterable"] = [](const Value& v, std::vector<Value>&) {
      return v.type == T::String || v.is_sequence() || v.type == T::Dict || v.is_undefined();
    };
    // Undefined has __len__ and __getitem__ (which raises), so jinja2 calls it a sequence.
    t["sequence"] = [](const Value& v, std::vector<Value>&) {
      return v.type == T::String || v.is_sequence() || v.type == T::Dict || v.is_undefined();
    };
    // jinja2's Undefined defines __call__ (to raise), so callable() is true for it.
    t["callable"] = [](const Value& v, std::vector<Value>&) { return v.type == T::Callable || v.is_undefined(); };
    // Python `value % n == 0`, so floats work too.
    t["even"] = [](const Value& v, std::vector<Value>&) { return equals(binary_op("%", v, I(2)), I(0)); };
    t["odd"] = [](const Value& v, std::vector<Value>&) { return equals(binary_op("%", v, I(2)), I(1)); };
    t["divisibleby"] = [arg](const Value& v, std::vector<Value>& a) {
      return equals(binary_op("%", v, arg(a, "divisibleby")), I(0));
    };
    t["eq"] = [arg](const Value& v, std::vector<Value>& a) { return equals(v, arg(a, "eq")); };
    t["ne"] = [arg](const Value& v, std::vector<Value>& a) { return !equals(v, arg(a, "ne")); };
    t["lt"] = [arg](const Value& v, std::vector<Value>& a) { return compare(v, arg(a, "lt")) < 0; };
    t["le"] = [arg](const Value& v, std::vector<Value>& a) { return compare(v, arg(a, "le")) <= 0; };
    t["gt"] = [arg](const Value& v, std::vector<Value>& a) { return compare(v, arg(a, "gt")) > 0; };
    t["ge"] = [arg](const Value& v, std::vector<Value>& a) { return compare(v, arg(a, "ge")) >= 0; };
    t["=="] = t["equalto"] = t["eq"];
    t["!="] = t["ne"];
    t["<"] = t["lessthan"] = t["lt"];
    t["<="] = t["le"];
    t[">"] = t["greaterthan"] = t["gt"];
    t[">="] = t["ge"];
    t["in"] = [arg](const Value& v, std::vector<Value>& a) { return contains(arg(a, "in"), v); };
    t["sameas"] = [arg](const Value& v, std::vector<Value>& a) {
      const Value& o = arg(a, "sameas");
      if (v.type != o.type) return false;
      switch (v.type) {
        case T::None:
        case T::Undefined: return true;
        case T::Bool: return v.boolean == o.boolean;
        case T::List:
        case T::Tuple: return v.list == o.list;
        case T::Dict:
        case T::Namespace: return v.dict == o.dict;
        default: return equals(v, o);
      }
    };
    // str(value).islower() / .isupper(): needs a cased character, all in that case.
    auto cased_test = [](bool upper) {
      return [upper](const Value& v, std::vector<Value>&) {
        bool any = false;
        for (char32_t c : utf8::decode(soft_str(v))) {
          if (!utf8::is_cased_letter(c)) continue;
          any = true;
          if ((upper ? utf8::to_upper(c) : utf8::to_lower(c)) != c) return false;
        }
        return any;
      };
    };
    t["lower"] = cased_test(false);
    t["upper"] = cased_test(true);
    t["escaped"] = [](const Value&, std::vector<Value>&) { return false; };
    return t;
  }();
  return table;
}

void check_overflow(bool overflow) {
  if (overflow) throw TemplateError("integer overflow: values beyond 64 bits are unsupported");
}

int64_t as_int(const Value& v) { return v.type == T::Bool ? v.boolean : v.integer; }

[[noreturn]] void bad_operands(const std::string& op, const Value& a, const Value& b) {
  if (op == "+" && a.type == T::String)
    throw TemplateError("can only concatenate str (not \"" + b.type_name() + "\") to str");
  throw TemplateError("unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" + b.type_name() + "'");
}

Value repeat(const List& items, int64_t n, bool tuple) {
  List out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), items.begin(), items.end());
  return Value::from_list(std::move(out), tuple);
}

}  // namespace

bool has_filter(const std::string& name) { return filters().count(name) > 0; }
bool has_test(const std::string& name) { return tests().count(name) > 0; }

Value apply_filter(const std::string& name, const Value& input, std::vector<Value>& args, Kwargs& kwargs) {
  auto it = filters().find(name);
  if (it == filters().end()) throw TemplateError("No filter named '" + name + "'.");
  return it->second(input, args, kwargs);
}

bool apply_test(const std::string& name, const Value& input, std::vector<Value>& args, Kwargs& kwargs) {
  auto it = tests().find(name);
  if (it == tests().end()) throw TemplateError("No test named '" + name + "'.");
  if (!kwargs.empty()) throw TemplateError("test '" + name + "' takes no keyword arguments");
  return it->second(input, args);
}

Value get_attr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (!name.empty() && name[0] == '_') return Value::undefined("access to attribute '" + name + "' is unsafe");
  switch (obj.type) {
    case T::String: return string_method(obj, name);
    case T::Dict: {
      Value m = dict_method(obj, name);
      if (!m.is_undefined()) return m;
      if (const Value* v = obj.dict->find(name)) return *v;
      return missing_attr(obj, name);
    }
    case T::Namespace: {
      if (const Value* v = obj.dict->find(name)) return *v;
      return missing_attr(obj, name);
    }
    case T::List:
    case T::Tuple: return list_method(obj, name);
    case T::Int:
    case T::Bool:
    case T::Float:
      if (name == "real") return obj.type == T::Bool ? I(obj.boolean) : obj;
      if (name == "imag") return obj.type == T::Float ? Value::from_float(0.0) : I(0);
      return missing_attr(obj, name);
    default: return missing_attr(obj, name);
  }
}

Value get_item(const Value& obj, const Value& key) {
  switch (obj.type) {
    case T::Undefined: fail_undefined(obj);  // Undefined.__getitem__ raises
    case T::Dict:
      if (const Value* v = obj.dict->find(key)) return *v;
      break;
    case T::List:
    case T::Tuple:
    case T::String:
      if (key.type == T::Int || key.type == T::Bool) {
        int64_t i = as_int(key);
        if (obj.type == T::String) {
          std::u32string u = utf8::decode(obj.str);
          int64_t n = static_cast<int64_t>(u.size());
          if (i < 0) i += n;
          if (i >= 0 && i < n) return S(utf8::encode(u.substr(i, 1)));
        } else {
          int64_t n = static_cast<int64_t>(obj.list->size());
          if (i < 0) i += n;
          if (i >= 0 && i < n) return (*obj.list)[i];
        }
        return Value::undefined(object_type(obj) + " has no element " + std::to_string(as_int(key)));
      }
      break;
    default: break;
  }
  if (key.type == T::String) return get_attr(obj, key.str);
  return Value::undefined(object_type(obj) + " has no element " + to_repr(key));
}

Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  auto opt = [](const Value& v) -> std::optional<int64_t> {
    if (v.is_none() || v.is_undefined()) return std::nullopt;
    return to_index(v, "slice indices");
  };
  if (obj.is_undefined()) fail_undefined(obj);
  bool is_str = obj.type == T::String;
  // jinja2 compiles slices to a plain Python subscript, so non-sequences raise TypeError.
  if (obj.type == T::Dict) throw TemplateError("unhashable type: 'slice'");
  if (!is_str && !obj.is_sequence()) throw TemplateError("'" + obj.type_name() + "' object is not subscriptable");
  std::u32string u;
  int64_t n;
  if (is_str) {
    u = utf8::decode(obj.str);
    n = static_cast<int64_t>(u.size());
  } else {
    n = static_cast<int64_t>(obj.list->size());
  }
  int64_t st = opt(step).value_or(1);
  if (st == 0) throw TemplateError("slice step cannot be zero");
  auto norm = [&](std::optional<int64_t> v, int64_t def_pos, int64_t def_neg) {
    if (!v) return st > 0 ? def_pos : def_neg;
    int64_t x = *v;
    if (x < 0) x += n;
    if (st > 0) return std::clamp<int64_t>(x, 0, n);
    return std::clamp<int64_t>(x, -1, n - 1);
  };
  int64_t b = norm(opt(start), 0, n - 1);
  int64_t e = norm(opt(stop), n, -1);
  std::vector<int64_t> idx;
  if (st > 0)
    for (int64_t i = b; i < e; i += st) idx.push_back(i);
  else
    for (int64_t i = b; i > e; i += st) idx.push_back(i);
  if (is_str) {
    std::u32string out;
    for (auto i : idx) out.push_back(u[i]);
    return S(utf8::encode(out));
  }
  List out;
  for (auto i : idx) out.push_back((*obj.list)[i]);
  return Value::from_list(std::move(out), obj.type == T::Tuple);
}

List iterate(const Value& v) {
  switch (v.type) {
    case T::Undefined: return {};
    case T::List:
    case T::Tuple: return *v.list;
    case T::Dict: {
      List keys;
      for (const auto& kv : v.dict->items) keys.push_back(kv.first);
      return keys;
    }
    case T::String: {
      List chars;
      for (char32_t c : utf8::decode(v.str)) {
        std::string s;
        utf8::append(s, c);
        chars.push_back(S(s));
      }
      return chars;
    }
    default: throw TemplateError("'" + v.type_name() + "' object is not iterable");
  }
}

bool contains(const Value& container, const Value& item) {
  switch (container.type) {
    case T::Undefined: return false;
    case T::String:
      if (item.type != T::String)
        throw TemplateError("'in <string>' requires string as left operand, not " + item.type_name());
      return container.str.find(item.str) != std::string::npos;
    case T::List:
    case T::Tuple:
      for (const auto& v : *container.list)
        if (equals(v, item)) return true;
      return false;
    case T::Dict:
      if (item.type == T::List || item.type == T::Dict || item.type == T::Namespace)
        throw TemplateError("unhashable type: '" + item.type_name() + "'");
      return container.dict->find(item) != nullptr;
    default: throw TemplateError("argument of type '" + container.type_name() + "' is not iterable");
  }
}

Value binary_op(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") return S(to_str(a) + to_str(b));
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  bool ints = (a.type == T::Int || a.type == T::Bool) && (b.type == T::Int || b.type == T::Bool);
  bool nums = a.is_number() && b.is_number();
  int64_t r = 0;
  if (op == "+") {
    if (ints) {
      check_overflow(__builtin_add_overflow(as_int(a), as_int(b), &r));
      return I(r);
    }
    if (nums) return Value::from_float(a.as_double() + b.as_double());
    if (a.type == T::String && b.type == T::String) return S(a.str + b.str);
    if (a.type == b.type && a.is_sequence()) {
      List out = *a.list;
      out.insert(out.end(), b.list->begin(), b.list->end());
      return Value::from_list(std::move(out), a.type == T::Tuple);
    }
    bad_operands(op, a, b);
  }
  if (op == "-") {
    if (ints) {
      check_overflow(__builtin_sub_overflow(as_int(a), as_int(b), &r));
      return I(r);
    }
    if (nums) return Value::from_float(a.as_double() - b.as_double());
    bad_operands(op, a, b);
  }
  if (op == "*") {
    if (ints) {
      check_overflow(__builtin_mul_overflow(as_int(a), as_int(b), &r));
      return I(r);
    }
    if (nums) return Value::from_float(a.as_double() * b.as_double());
    const Value* seq = (a.type == T::String || a.is_sequence()) ? &a : &b;
    const Value* cnt = seq == &a ? &b : &a;
    if ((cnt->type == T::Int || cnt->type == T::Bool) && (seq->type == T::String || seq->is_sequence())) {
      int64_t n = std::max<int64_t>(0, as_int(*cnt));
      if (n > 1000000) throw TemplateError("repetition count too large");
      if (seq->type == T::String) {
        std::string out;
        for (int64_t i = 0; i < n; ++i) out += seq->str;
        return S(out);
      }
      return repeat(*seq->list, n, seq->type == T::Tuple);
    }
    bad_operands(op, a, b);
  }
  if (op == "/") {
    if (!nums) bad_operands(op, a, b);
    if (b.as_double() == 0) throw TemplateError("division by zero");
    return Value::from_float(a.as_double() / b.as_double());
  }
  if (op == "//" || op == "%") {
    if (!nums) {
      if (op == "%" && a.type == T::String) return S(percent_format(a.str, b));
      bad_operands(op, a, b);
    }
    if (ints) {
      int64_t x = as_int(a), y = as_int(b);
      if (y == 0) throw TemplateError(op == "%" ? "integer modulo by zero" : "integer division or modulo by zero");
      int64_t q = x / y, m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) {
        --q;
        m += y;
      }
      return I(op == "//" ? q : m);
    }
    double x = a.as_double(), y = b.as_double();
    if (y == 0) throw TemplateError("float divmod()");
    double m = std::fmod(x, y);
    if (m != 0 && ((m < 0) != (y < 0))) m += y;
    if (op == "%") return Value::from_float(m);
    return Value::from_float(std::floor(x / y));
  }
  if (op == "**") {
    if (!nums) bad_operands(op, a, b);
    if (ints && as_int(b) >= 0) {
      int64_t base = as_int(a), e = as_int(b), acc = 1;
      for (int64_t i = 0; i < e; ++i) check_overflow(__builtin_mul_overflow(acc, base, &acc));
      return I(acc);
    }
    if (a.as_double() == 0.0 && b.as_double() < 0) throw TemplateError("0.0 cannot be raised to a negative power");
    return Value::from_float(std::pow(a.as_double(), b.as_double()));
  }
  throw TemplateError("unsupported operator '" + op + "'");
}

Value call(const Value& fn, std::vector<Value>& args, Kwargs& kwargs) {
  if (fn.is_undefined()) fail_undefined(fn);
  if (fn.type != T::Callable) throw TemplateError("'" + fn.type_name() + "' object is not callable");
  return fn.callable->fn(args, kwargs);
}

void add_globals(Dict& g) {
  g.set(S("range"), Value::function("range", [](std::vector<Value>& a, Kwargs& k) {
          if (!k.empty()) throw TemplateError("range() takes no keyword arguments");
          if (a.empty() || a.size() > 3) throw TemplateError("range expected 1 to 3 arguments");
          int64_t start = 0, stop, step = 1;
          if (a.size() == 1) {
            stop = to_index(a[0], "range() argument");
          } else {
            start = to_index(a[0], "range() argument");
            stop = to_index(a[1], "range() argument");
            if (a.size() == 3) step = to_index(a[2], "range() argument");
          }
          if (step == 0) throw TemplateError("range() arg 3 must not be zero");
          List out;
          for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
            // jinja2's sandbox caps ranges at MAX_RANGE = 100000 items.
            if (out.size() >= 100000) throw TemplateError("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
            out.push_back(I(i));
          }
          return Value::from_list(std::move(out));
        }));
  g.set(S("namespace"), Value::function("namespace", [](std::vector<Value>& a, Kwargs& k) {
          Value ns = Value::new_namespace();
          for (const auto& init : a) {
            if (!init.is_dict()) throw TemplateError("namespace() positional argument must be a mapping");
            for (const auto& [key, v] : init.dict->items) ns.dict->set(key, v);
          }
          for (const auto& [key, v] : k) ns.dict->set(S(key), v);
          return ns;
        }));
  g.set(S("dict"), Value::function("dict", [](std::vector<Value>& a, Kwargs& k) {
          Dict d;
          for (const auto& init : a) {
            if (!init.is_dict()) throw TemplateError("dict() positional argument must be a mapping");
            for (const auto& [key, v] : init.dict->items) d.set(key, v);
          }
          for (const auto& [key, v] : k) d.set(S(key), v);
          return Value::from_dict(std::move(d));
        }));
  g.set(S("joiner"), Value::function("joiner", [](std::vector<Value>& a, Kwargs& k) {
          // Returns "" on the first call and the separator afterwards.
          auto b = bind("joiner", a, k, {{"sep", S(", ")}});
          auto used = std::make_shared<bool>(false);
          std::string sep = to_str(b[0]);
          return Value::function("joiner", [used, sep](std::vector<Value>&, Kwargs&) {
            if (!*used) {
              *used = true;
              return S("");
            }
            return S(sep);
          });
        }));
  g.set(S("cycler"), Value::function("cycler", [](std::vector<Value>& a, Kwargs& k) {
          if (!k.empty()) throw TemplateError("cycler() takes no keyword arguments");
          if (a.empty()) throw TemplateError("at least one item has to be provided");
          // A namespace-like object: .current, .next() and .reset().
          Value c = Value::new_namespace();
          auto items = std::make_shared<List>(a);
          auto pos = std::make_shared<size_t>(0);
          std::weak_ptr<Dict> self = c.dict;
          c.dict->set(S("current"), (*items)[0]);
          c.dict->set(S("next"), Value::function("next", [items, pos, self](std::vector<Value>&, Kwargs&) {
                        Value rv = (*items)[*pos];
                        *pos = (*pos + 1) % items->size();
                        if (auto d = self.lock()) d->set(S("current"), (*items)[*pos]);
                        return rv;
                      }));
          c.dict->set(S("reset"), Value::function("reset", [items, pos, self](std::vector<Value>&, Kwargs&) {
                        *pos = 0;
                        if (auto d = self.lock()) d->set(S("current"), (*items)[0]);
                        return N();
                      }));
          return c;
        }));
  g.set(S("raise_exception"), Value::function("raise_exception", [](std::vector<Value>& a, Kwargs& k) -> Value {
          auto b = bind("raise_exception", a, k, {{"message", S("")}});
          throw RaisedError(to_str(b[0]));
        }));
  g.set(S("strftime_now"), Value::function("strftime_now", [](std::vector<Value>& a, Kwargs& k) {
          auto b = bind("strftime_now", a, k, {{"format", Value()}});
          std::string fmt = need_str(b[0], "format");
          std::time_t now = std::time(nullptr);
          std::tm tm{};
          localtime_r(&now, &tm);
          if (fmt.empty()) return S("");
          std::vector<char> buf(256 + fmt.size() * 64);
          size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
          return S(std::string(buf.data(), n));
        }));
}

}  // namespace lorax::jinja
