// Python semantics of the operators (+, %, in, [], slicing), iteration and
// calls, plus the globals jinja2 and transformers provide.
#include "tokenizer/jinja/builtins.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <optional>

#include "tokenizer/jinja/support.h"
#include "tokenizer/jinja/utf8.h"

namespace lorax::jinja {

[[noreturn]] void fail_undefined(const Value& u) {
  throw TemplateError(u.str.empty() ? "value is undefined" : u.str);
}

namespace {

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
  RenderBudget::check(RenderBudget::times(static_cast<size_t>(n), RenderBudget::footprint(items)));
  List out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), items.begin(), items.end());
  return Value::from_list(std::move(out), tuple);
}

}  // namespace

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
      const std::u32string u = utf8::decode(v.str);
      RenderBudget::charge(RenderBudget::times(u.size(), sizeof(Value)));  // one string per character
      List chars;
      for (char32_t c : u) {
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
  // str % x formats first: Undefined only fails when a conversion touches it.
  if (op == "%" && a.type == T::String) return S(percent_format(a.str, b));
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
    if (a.type == T::String && b.type == T::String) {
      if (!a.is_markup() && !b.is_markup()) return S(a.str + b.str);
      // Markup escapes the plain operand, as markupsafe's __add__/__radd__ do.
      return Value::markup((a.is_markup() ? a.str : html_escape(a.str)) + (b.is_markup() ? b.str : html_escape(b.str)));
    }
    if (a.type == b.type && a.is_sequence()) {
      RenderBudget::check(RenderBudget::footprint(*a.list) + RenderBudget::footprint(*b.list));
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
        RenderBudget::check(RenderBudget::times(static_cast<size_t>(n), seq->str.size()));
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
    if (y == 0) throw TemplateError(op == "%" ? "float modulo" : "float floor division by zero");
    // CPython's float_divmod, so results match to the last bit (2.5 // 0.1 == 24.0).
    double m = std::fmod(x, y);
    double div = (x - m) / y;
    if (m != 0) {
      if ((y < 0) != (m < 0)) {
        m += y;
        div -= 1.0;
      }
    } else {
      m = std::copysign(0.0, y);
    }
    if (op == "%") return Value::from_float(m);
    double floordiv;
    if (div != 0) {
      floordiv = std::floor(div);
      if (div - floordiv > 0.5) floordiv += 1.0;
    } else {
      floordiv = std::copysign(0.0, x / y);
    }
    return Value::from_float(floordiv);
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
