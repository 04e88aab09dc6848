// The Python methods templates call on values (str.strip, dict.items, ...)
// and jinja2's getattr; the sandbox refuses methods that mutate lists/dicts.
#include <algorithm>
#include <set>

#include "tokenizer/jinja/support.h"
#include "tokenizer/jinja/utf8.h"

namespace lorax::jinja {
namespace {

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
        RenderBudget::check(out.size());
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

}  // namespace

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

}  // namespace lorax::jinja
