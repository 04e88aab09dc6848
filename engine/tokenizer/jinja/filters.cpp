// jinja2's built-in filters, with transformers' tojson (json.dumps with
// ensure_ascii=False and optional indent/separators/sort_keys).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>

#include "tokenizer/jinja/support.h"
#include "tokenizer/jinja/utf8.h"

namespace lorax::jinja {
namespace {

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
    // A numeric part longer than any index still looks up as one (and finds nothing).
    cur = get_item(cur, numeric ? I(part.size() > 18 ? INT64_MAX : std::stoll(part)) : S(part));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.type == T::String) return S(map_case(v.str, false));
  return v;
}

void sort_values(List& items, bool reverse, const std::function<Value(const Value&)>& key) {
  std::vector<std::pair<Value, Value>> keyed;
  for (auto& v : items) keyed.emplace_back(key(v), v);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
    if (a.first.is_undefined() && b.first.is_undefined()) return false;  // jinja2 sorts these without complaint
    return reverse ? compare(b.first, a.first) < 0 : compare(a.first, b.first) < 0;
  });
  items.clear();
  for (auto& kv : keyed) items.push_back(kv.second);
}

std::string indent_text(const std::string& input, const Value& width, bool first, bool blank) {
  const int64_t w = width.type == T::String ? 0 : to_index(width, "width");
  RenderBudget::check(w < 0 ? 0 : static_cast<size_t>(w));
  std::string ind = width.type == T::String ? width.str : std::string(std::max<int64_t>(w, 0), ' ');
  std::vector<std::string> lines = splitlines(input + "\n", false);
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) {
      rv += (i ? "\n" + ind : "") + lines[i];
      RenderBudget::check(rv.size());
    }
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) {
      rv += "\n" + (lines[i].empty() ? "" : ind + lines[i]);
      RenderBudget::check(rv.size());
    }
  }
  return first ? ind + rv : rv;
}

double py_round(double x, int64_t digits, const std::string& method) {
  double m = std::pow(10.0, static_cast<double>(digits));
  double y = x * m;
  if (method == "ceil") return std::ceil(y) / m;
  if (method == "floor") return std::floor(y) / m;
  if (method != "common") throw TemplateError("method must be 'common', 'ceil' or 'floor'");
  if (digits >= 0 && digits <= 300 && std::isfinite(x)) {
    // Python's round() rounds the exact binary value half-to-even in decimal,
    // which is what glibc's correctly rounded %.*f does.
    char buf[512];
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(digits), x);
    return std::strtod(buf, nullptr);
  }
  return std::nearbyint(y) / m;
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
  // strtod, not std::stod: out of range is inf or 0 as in Python's float(), not an error.
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || static_cast<size_t>(end - s.c_str()) != s.size()) return std::nullopt;
  return v;
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
  if (!test.empty() && !has_test(test)) throw TemplateError(missing_test_message(test));
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
      RenderBudget::check(static_cast<size_t>(w - len) + s.size());
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
      if (x.is_undefined()) return x;  // len(Undefined) == 0, so it passes through
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
      return x.is_markup() ? x : Value::markup(html_escape(soft_str(x)));  // Markup is never escaped twice
    };
    f["e"] = f["escape"];
    f["forceescape"] = [](const Value& x, std::vector<Value>& a, Kwargs& k) {
      bind("forceescape", a, k, {});
      return Value::markup(html_escape(soft_str(x)));
    };
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
        RenderBudget::check(out.size());
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
      if (!has_filter(name)) throw TemplateError(missing_filter_message(name));
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
      return Value::markup(soft_str(x));
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
      return x.is_markup() ? x : S(soft_str(x));
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
        if (key.type == T::List || key.type == T::Dict || key.type == T::Namespace)
          throw TemplateError("unhashable type: '" + key.type_name() + "'");
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

}  // namespace

std::string missing_filter_message(const std::string& name) {
  static const std::set<std::string> jinja2_only = {"filesizeformat", "groupby", "slice", "striptags", "urlencode",
                                                    "urlize", "wordwrap", "xmlattr"};
  return (jinja2_only.count(name) ? "unsupported filter '" : "unknown filter '") + name + "'";
}

bool has_filter(const std::string& name) { return filters().count(name) > 0; }

Value apply_filter(const std::string& name, const Value& input, std::vector<Value>& args, Kwargs& kwargs) {
  auto it = filters().find(name);
  if (it == filters().end()) throw TemplateError(missing_filter_message(name));
  return it->second(input, args, kwargs);
}

}  // namespace lorax::jinja
