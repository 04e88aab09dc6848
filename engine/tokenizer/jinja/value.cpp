#include "tokenizer/jinja/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <utility>

#include "tokenizer/jinja/error.h"
#include "tokenizer/jinja/utf8.h"

namespace lorax::jinja {

namespace {
void check_depth(uint32_t depth) {
  if (depth > Value::kMaxDepth) throw TemplateError("maximum nesting depth of values exceeded");
}
}  // namespace

Value Value::from_string(std::string s) {
  RenderBudget::charge(s.size());
  Value v;
  v.type = Type::String;
  v.str = std::move(s);
  return v;
}

Value Value::from_list(List items, bool tuple) {
  RenderBudget::charge(items.size() * sizeof(Value));
  Value v;
  v.type = tuple ? Type::Tuple : Type::List;
  uint32_t d = 0;
  size_t text = 0;
  for (const auto& e : items) {
    d = std::max(d, e.depth);
    text += e.str.size();
  }
  RenderBudget::charge_total(text);
  v.depth = d + 1;
  check_depth(v.depth);
  v.list = std::make_shared<List>(std::move(items));
  return v;
}

Value Value::from_dict(Dict d) {
  Value v;
  v.type = Type::Dict;
  uint32_t deepest = 0;
  for (const auto& [k, e] : d.items) deepest = std::max({deepest, k.depth, e.depth});
  v.depth = deepest + 1;
  check_depth(v.depth);
  v.dict = std::make_shared<Dict>(std::move(d));
  return v;
}

Value Value::new_namespace() {
  Value v;
  v.type = Type::Namespace;
  v.dict = std::make_shared<Dict>();
  RenderCells::track(v.dict);
  return v;
}

Dict::~Dict() {
  thread_local bool freeing = false;
  thread_local std::vector<std::vector<std::pair<Value, Value>>> pending;
  if (freeing) {
    pending.push_back(std::move(items));
    return;
  }
  freeing = true;
  items.clear();
  while (!pending.empty()) {
    std::vector<std::pair<Value, Value>> next = std::move(pending.back());
    pending.pop_back();
    next.clear();  // frees dicts nested in it, which add their items to `pending`
  }
  freeing = false;
}

namespace {
thread_local RenderCells* current_cells = nullptr;
thread_local RenderBudget* current_budget = nullptr;
}  // namespace

RenderBudget::RenderBudget() : previous_(current_budget) { current_budget = this; }
RenderBudget::~RenderBudget() { current_budget = previous_; }

void RenderBudget::check(size_t bytes) {
  if (bytes > kMaxBytes)
    throw TemplateError("the template built a value of more than " + std::to_string(kMaxBytes >> 20) + " MB");
}

size_t RenderBudget::footprint(const List& items) {
  size_t bytes = items.size() * sizeof(Value);
  for (const auto& e : items) bytes += e.str.size();
  return bytes;
}

void RenderBudget::charge(size_t bytes) {
  check(bytes);
  charge_total(bytes);
}

void RenderBudget::charge_total(size_t bytes) {
  if (RenderBudget* b = current_budget) {
    b->used_ += bytes;
    if (b->used_ > kMaxTotalBytes)
      throw TemplateError("the template built more than " + std::to_string(kMaxTotalBytes >> 20) + " MB of text and lists");
  }
}

RenderCells::RenderCells() : previous_(current_cells) { current_cells = this; }

RenderCells::~RenderCells() {
  current_cells = previous_;
  // Each cell's old contents are released while the cell itself is still held.
  for (auto& weak : memories_) {
    if (auto memory = weak.lock()) std::exchange(*memory, std::nullopt).reset();
  }
  for (auto& weak : dicts_) {
    if (auto dict = weak.lock()) std::exchange(dict->items, {}).clear();
  }
}

void RenderCells::track(const std::shared_ptr<Dict>& namespace_dict) {
  RenderCells* cells = current_cells;
  if (!cells) return;
  if (cells->dicts_.size() >= cells->compact_at_) {  // forget the ones already freed
    std::erase_if(cells->dicts_, [](const std::weak_ptr<Dict>& w) { return w.expired(); });
    cells->compact_at_ = std::max<size_t>(4096, 2 * cells->dicts_.size());
  }
  cells->dicts_.push_back(namespace_dict);
}

void RenderCells::track(const std::shared_ptr<std::optional<Value>>& memory) {
  if (RenderCells* cells = current_cells) cells->memories_.push_back(memory);
}

Value Value::function(std::string name, std::function<Value(std::vector<Value>&, Kwargs&)> fn) {
  Value v;
  v.type = Type::Callable;
  v.callable = std::make_shared<Callable>(Callable{std::move(name), std::move(fn)});
  return v;
}

bool Value::truthy() const {
  switch (type) {
    case Type::Undefined:
    case Type::None: return false;
    case Type::Bool: return boolean;
    case Type::Int: return integer != 0;
    case Type::Float: return real != 0.0;
    case Type::String: return !str.empty();
    case Type::List:
    case Type::Tuple: return !list->empty();
    case Type::Dict: return !dict->items.empty();
    default: return true;
  }
}

double Value::as_double() const {
  switch (type) {
    case Type::Bool: return boolean ? 1.0 : 0.0;
    case Type::Int: return static_cast<double>(integer);
    case Type::Float: return real;
    default: return 0.0;
  }
}

std::string Value::type_name() const {
  switch (type) {
    case Type::Undefined: return "Undefined";
    case Type::None: return "NoneType";
    case Type::Bool: return "bool";
    case Type::Int: return "int";
    case Type::Float: return "float";
    case Type::String: return "str";
    case Type::List: return "list";
    case Type::Tuple: return "tuple";
    case Type::Dict: return "dict";
    case Type::Namespace: return "Namespace";
    case Type::Callable: return "function";
  }
  return "object";
}

const Value* Dict::find(const Value& key) const {
  for (const auto& [k, v] : items)
    if (equals(k, key)) return &v;
  return nullptr;
}

const Value* Dict::find(const std::string& key) const {
  for (const auto& [k, v] : items)
    if (k.type == Value::Type::String && k.str == key) return &v;
  return nullptr;
}

void Dict::set(const Value& key, Value value) {
  for (auto& [k, v] : items)
    if (equals(k, key)) {
      v = std::move(value);
      return;
    }
  items.emplace_back(key, std::move(value));
}

bool equals(const Value& a, const Value& b) {
  using T = Value::Type;
  if (a.is_number() && b.is_number()) {
    if (a.type != T::Float && b.type != T::Float) {
      int64_t x = a.type == T::Bool ? a.boolean : a.integer;
      int64_t y = b.type == T::Bool ? b.boolean : b.integer;
      return x == y;
    }
    return a.as_double() == b.as_double();
  }
  if (a.type != b.type) return false;
  switch (a.type) {
    case T::Undefined:
    case T::None: return true;
    case T::String: return a.str == b.str;
    case T::List:
    case T::Tuple: {
      if (a.list->size() != b.list->size()) return false;
      for (size_t i = 0; i < a.list->size(); ++i)
        if (!equals((*a.list)[i], (*b.list)[i])) return false;
      return true;
    }
    case T::Dict: {
      if (a.dict->items.size() != b.dict->items.size()) return false;
      for (const auto& [k, v] : a.dict->items) {
        const Value* o = b.dict->find(k);
        if (!o || !equals(v, *o)) return false;
      }
      return true;
    }
    case T::Namespace: return a.dict == b.dict;
    case T::Callable: return a.callable == b.callable;
    default: return false;
  }
}

int compare(const Value& a, const Value& b) {
  using T = Value::Type;
  if (a.is_number() && b.is_number()) {
    if (a.type != T::Float && b.type != T::Float) {
      int64_t x = a.type == T::Bool ? a.boolean : a.integer;
      int64_t y = b.type == T::Bool ? b.boolean : b.integer;
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    double x = a.as_double(), y = b.as_double();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.type == T::String && b.type == T::String) {
    // UTF-8 byte order equals code-point order, which is what Python compares.
    int c = a.str.compare(b.str);
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if ((a.type == T::List && b.type == T::List) || (a.type == T::Tuple && b.type == T::Tuple)) {
    size_t n = std::min(a.list->size(), b.list->size());
    for (size_t i = 0; i < n; ++i) {
      if (equals((*a.list)[i], (*b.list)[i])) continue;
      return compare((*a.list)[i], (*b.list)[i]);
    }
    return a.list->size() < b.list->size() ? -1 : (a.list->size() > b.list->size() ? 1 : 0);
  }
  if (a.is_undefined() || b.is_undefined()) {
    const Value& u = a.is_undefined() ? a : b;
    throw TemplateError(u.str.empty() ? "value is undefined" : u.str);
  }
  throw TemplateError("comparison not supported between instances of '" + a.type_name() + "' and '" +
                      b.type_name() + "'");
}

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  bool neg = false;
  if (!sci.empty() && sci[0] == '-') {
    neg = true;
    sci.erase(0, 1);
  }
  size_t epos = sci.find('e');
  std::string mant = sci.substr(0, epos);
  int exp = std::stoi(sci.substr(epos + 1));
  std::string digits;
  for (char c : mant)
    if (c != '.') digits.push_back(c);
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  std::string out = neg ? "-" : "";
  // Python's repr switches to exponent notation outside 1e-4 <= |d| < 1e16.
  if (exp >= -5 + 1 && exp < 16) {
    if (exp >= 0) {
      std::string ip = digits.substr(0, std::min<size_t>(digits.size(), exp + 1));
      while (ip.size() < static_cast<size_t>(exp + 1)) ip.push_back('0');
      std::string fp = digits.size() > static_cast<size_t>(exp + 1) ? digits.substr(exp + 1) : "0";
      out += ip;
      out += '.';
      out += fp;
    } else {
      out += "0.";
      out.append(static_cast<size_t>(-exp - 1), '0');
      out += digits;
    }
  } else {
    out += digits.substr(0, 1);
    if (digits.size() > 1) {
      out += '.';
      out += digits.substr(1);
    }
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += eb;
  }
  return out;
}

namespace {

bool printable(char32_t c) {
  if (c < 0x20 || c == 0x7f) return false;
  if (c >= 0x80 && c <= 0xa0) return false;
  if (c == 0xad || c == 0x1680 || (c >= 0x2000 && c <= 0x200f) || (c >= 0x2028 && c <= 0x202f) ||
      (c >= 0x205f && c <= 0x2064) || c == 0x3000 || c == 0xfeff || (c >= 0xd800 && c <= 0xdfff))
    return false;
  return true;
}

std::string repr_string(const std::string& s) {
  bool has_single = s.find('\'') != std::string::npos;
  bool has_double = s.find('"') != std::string::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  for (char32_t c : utf8::decode(s)) {
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (!printable(c)) {
      char buf[16];
      if (c < 0x100)
        std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(c));
      else if (c < 0x10000)
        std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      else
        std::snprintf(buf, sizeof buf, "\\U%08x", static_cast<unsigned>(c));
      out += buf;
    } else {
      utf8::append(out, c);
    }
  }
  out.push_back(quote);
  return out;
}

}  // namespace

namespace {

// Python's repr guard (Py_ReprEnter): a container met again while it is being
// printed shows as [...] / (...) / {...}. Only namespaces can close such a
// cycle, since lists and dicts are immutable here.
class ReprGuard {
 public:
  explicit ReprGuard(const void* p) {
    if (active().size() > Value::kMaxDepth)
      throw TemplateError("maximum recursion depth exceeded while getting the repr of an object");
    reentered_ = std::find(active().begin(), active().end(), p) != active().end();
    if (!reentered_) active().push_back(p);
  }
  ~ReprGuard() {
    if (!reentered_) active().pop_back();
  }
  bool reentered() const { return reentered_; }

 private:
  static std::vector<const void*>& active() {
    static thread_local std::vector<const void*> stack;
    return stack;
  }
  bool reentered_ = false;
};

}  // namespace

std::string to_repr(const Value& v) {
  using T = Value::Type;
  switch (v.type) {
    case T::Undefined: return "Undefined";
    case T::None: return "None";
    case T::Bool: return v.boolean ? "True" : "False";
    case T::Int: return std::to_string(v.integer);
    case T::Float: return float_repr(v.real);
    case T::String: return v.boolean ? "Markup(" + repr_string(v.str) + ")" : repr_string(v.str);
    case T::List:
    case T::Tuple: {
      bool tuple = v.type == T::Tuple;
      ReprGuard guard(v.list.get());
      if (guard.reentered()) return tuple ? "(...)" : "[...]";
      std::string out = tuple ? "(" : "[";
      for (size_t i = 0; i < v.list->size(); ++i) {
        if (i) out += ", ";
        out += to_repr((*v.list)[i]);
        RenderBudget::check(out.size());
      }
      if (tuple && v.list->size() == 1) out += ",";
      out += tuple ? ")" : "]";
      return out;
    }
    case T::Dict: {
      ReprGuard guard(v.dict.get());
      if (guard.reentered()) return "{...}";
      std::string out = "{";
      bool first = true;
      for (const auto& [k, val] : v.dict->items) {
        if (!first) out += ", ";
        first = false;
        out += to_repr(k) + ": " + to_repr(val);
        RenderBudget::check(out.size());
      }
      return out + "}";
    }
    case T::Namespace: {
      Value d;
      d.type = T::Dict;
      d.dict = v.dict;
      return "<Namespace " + to_repr(d) + ">";
    }
    case T::Callable: return "<function " + v.callable->name + ">";
  }
  return "";
}

std::string to_str(const Value& v) {
  switch (v.type) {
    case Value::Type::Undefined: return "";
    case Value::Type::String: return v.str;
    default: return to_repr(v);
  }
}

namespace {

void dump_string(std::string& out, const std::string& s) {
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

std::string dump_float(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return float_repr(d);
}

void dump(std::string& out, const Value& v, const DumpOptions& o, int level) {
  using T = Value::Type;
  bool indented = o.indent >= 0 || o.indent_is_string;
  auto newline = [&](int lvl) {
    const size_t unit = o.indent_is_string ? o.indent_str.size() : static_cast<size_t>(std::max(o.indent, 0));
    RenderBudget::check(out.size() + RenderBudget::times(static_cast<size_t>(lvl), unit));
    out.push_back('\n');
    for (int i = 0; i < lvl; ++i) out += o.indent_is_string ? o.indent_str : std::string(o.indent, ' ');
  };
  switch (v.type) {
    case T::None: out += "null"; return;
    case T::Bool: out += v.boolean ? "true" : "false"; return;
    case T::Int: out += std::to_string(v.integer); return;
    case T::Float: out += dump_float(v.real); return;
    case T::String: dump_string(out, v.str); return;
    case T::List:
    case T::Tuple: {
      if (v.list->empty()) {
        out += "[]";
        return;
      }
      out.push_back('[');
      for (size_t i = 0; i < v.list->size(); ++i) {
        if (i) out += o.item_sep;
        if (indented) newline(level + 1);
        dump(out, (*v.list)[i], o, level + 1);
        RenderBudget::check(out.size());
      }
      if (indented) newline(level);
      out.push_back(']');
      return;
    }
    case T::Dict: {
      if (v.dict->items.empty()) {
        out += "{}";
        return;
      }
      std::vector<const std::pair<Value, Value>*> entries;
      for (const auto& e : v.dict->items) entries.push_back(&e);
      if (o.sort_keys)
        std::stable_sort(entries.begin(), entries.end(),
                         [](auto* a, auto* b) { return compare(a->first, b->first) < 0; });
      out.push_back('{');
      bool first = true;
      for (const auto* e : entries) {
        if (!first) out += o.item_sep;
        first = false;
        if (indented) newline(level + 1);
        const Value& k = e->first;
        switch (k.type) {
          case T::String: dump_string(out, k.str); break;
          case T::Int: dump_string(out, std::to_string(k.integer)); break;
          case T::Float: dump_string(out, dump_float(k.real)); break;
          case T::Bool: dump_string(out, k.boolean ? "true" : "false"); break;
          case T::None: dump_string(out, "null"); break;
          default: throw TemplateError("keys must be str, int, float, bool or None, not " + k.type_name());
        }
        out += o.key_sep;
        dump(out, e->second, o, level + 1);
        RenderBudget::check(out.size());
      }
      if (indented) newline(level);
      out.push_back('}');
      return;
    }
    default:
      throw TemplateError("Object of type " + v.type_name() + " is not JSON serializable");
  }
}

}  // namespace

std::string dump_json(const Value& v, const DumpOptions& opts) {
  std::string out;
  dump(out, v, opts, 0);
  return out;
}

}  // namespace lorax::jinja
