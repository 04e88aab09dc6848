// Runtime values of the Jinja interpreter, modelled on the Python objects that
// jinja2 sees when transformers renders a chat template (str, int, float, bool,
// None, list, tuple, dict, Undefined, namespace, callables). Printing and
// comparisons follow Python so output is byte-identical to jinja2.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/jinja/error.h"

namespace lorax::jinja {

struct Value;
using List = std::vector<Value>;

// Keyword arguments keep call order, like Python **kwargs.
using Kwargs = std::vector<std::pair<std::string, Value>>;

struct Callable {
  std::string name;
  std::function<Value(std::vector<Value>& args, Kwargs& kwargs)> fn;
};

struct Dict;

struct Value {
  enum class Type : uint8_t { Undefined, None, Bool, Int, Float, String, List, Tuple, Dict, Namespace, Callable };

  // Deepest data nesting allowed: deeper values would overflow the C++ stack
  // when printed, compared or destroyed (Python raises RecursionError there).
  static constexpr uint32_t kMaxDepth = 512;

  Type type = Type::Undefined;
  bool boolean = false;
  uint32_t depth = 0;  // nesting depth of List/Tuple/Dict values
  int64_t integer = 0;
  double real = 0;
  std::string str;  // String payload; for Undefined the reason used in errors
  std::shared_ptr<List> list;          // List and Tuple
  std::shared_ptr<Dict> dict;          // Dict and Namespace (namespaces are mutable)
  std::shared_ptr<Callable> callable;

  static Value undefined(std::string why = "") {
    Value v;
    v.str = std::move(why);
    return v;
  }
  static Value none() { Value v; v.type = Type::None; return v; }
  static Value from_bool(bool b) { Value v; v.type = Type::Bool; v.boolean = b; return v; }
  static Value from_int(int64_t i) { Value v; v.type = Type::Int; v.integer = i; return v; }
  static Value from_float(double d) { Value v; v.type = Type::Float; v.real = d; return v; }
  static Value from_string(std::string s);  // counts against the RenderBudget
  // markupsafe.Markup (what escape/safe return): a str that is never escaped again
  // and escapes plain strings added to it. Marked by `boolean` on a String.
  static Value markup(std::string s) { Value v = from_string(std::move(s)); v.boolean = true; return v; }
  bool is_markup() const { return type == Type::String && boolean; }
  static Value from_list(List items, bool tuple = false);  // counts against the RenderBudget
  static Value from_dict(Dict d);
  static Value new_namespace();
  static Value function(std::string name, std::function<Value(std::vector<Value>&, Kwargs&)> fn);

  bool is_undefined() const { return type == Type::Undefined; }
  bool is_none() const { return type == Type::None; }
  bool is_string() const { return type == Type::String; }
  bool is_number() const { return type == Type::Int || type == Type::Float || type == Type::Bool; }
  bool is_sequence() const { return type == Type::List || type == Type::Tuple; }
  bool is_dict() const { return type == Type::Dict; }

  // Python truthiness (Undefined is falsy, as in jinja2).
  bool truthy() const;
  double as_double() const;  // for numbers only
  // Python's type name ('str', 'int', 'dict', ...), used in error messages.
  std::string type_name() const;
};

// Insertion-ordered mapping; dicts in templates are small, so lookups scan.
struct Dict {
  std::vector<std::pair<Value, Value>> items;

  Dict() = default;
  Dict(const Dict&) = default;
  Dict(Dict&&) = default;
  Dict& operator=(const Dict&) = default;
  Dict& operator=(Dict&&) = default;
  // Iterative: a dict freed while another is being freed hands its items to the
  // outer one's loop, so a chain of namespaces (ns.next = namespace(next=ns.next),
  // any length: nothing bounds it) never recurses once per link.
  ~Dict();
  const Value* find(const Value& key) const;
  const Value* find(const std::string& key) const;
  void set(const Value& key, Value value);
};

// What a template can mutate, namespace attributes and loop.changed()'s memory,
// is the only way its values can come to reference themselves
// ({% set ns.self = ns %}), which shared_ptr alone never frees. A RenderCells
// alive on the thread during a render records each such cell and empties them,
// in creation order, when destroyed: cycles are freed, and a long chain of
// namespaces is torn down one link at a time instead of recursively.
class RenderCells {
 public:
  RenderCells();   // becomes the thread's current registry
  ~RenderCells();  // empties every cell still alive; restores the previous registry
  RenderCells(const RenderCells&) = delete;
  RenderCells& operator=(const RenderCells&) = delete;
  // No-ops when no render is in progress on this thread.
  static void track(const std::shared_ptr<Dict>& namespace_dict);
  static void track(const std::shared_ptr<std::optional<Value>>& memory);

 private:
  std::vector<std::weak_ptr<Dict>> dicts_;
  std::vector<std::weak_ptr<std::optional<Value>>> memories_;
  size_t compact_at_ = 4096;
  RenderCells* previous_;
};

// What one render may build, so that a template cannot exhaust memory or time
// with text or lists that keep growing (jinja2 has no such bound; a chat prompt is
// a few MB). Active on the thread while a Template renders, like RenderCells;
// without one, only the per-value bound applies.
// The fuzz build lowers both (LORAX_FUZZ in CMakeLists.txt), as it does the loop limit.
class RenderBudget {
 public:
#ifdef LORAX_JINJA_MAX_VALUE_BYTES
  static constexpr size_t kMaxBytes = LORAX_JINJA_MAX_VALUE_BYTES;
  static constexpr size_t kMaxTotalBytes = LORAX_JINJA_MAX_RENDER_BYTES;
#else
  static constexpr size_t kMaxBytes = size_t{64} << 20;       // one string, one list, the output
  static constexpr size_t kMaxTotalBytes = size_t{1} << 30;  // every string and list one render builds
#endif
  RenderBudget();
  ~RenderBudget();
  RenderBudget(const RenderBudget&) = delete;
  RenderBudget& operator=(const RenderBudget&) = delete;
  // A string or list of `bytes` is built: TemplateError when it or the render's total is over.
  static void charge(size_t bytes);
  // A string being built has reached `bytes` (checked while it grows, before it is a Value).
  static void check(size_t bytes);
  // Copies of strings the template made (a list copies its strings' text): the render's total only.
  static void charge_total(size_t bytes);
  // Bytes a list takes with the text of its strings (a Value holds its string by value).
  static size_t footprint(const List& items);
  static size_t times(size_t a, size_t b) {  // a * b, saturating
    size_t r = 0;
    return __builtin_mul_overflow(a, b, &r) ? SIZE_MAX : r;
  }

 private:
  size_t used_ = 0;
  RenderBudget* previous_;
};

// Python semantics.
bool equals(const Value& a, const Value& b);
// -1/0/1 for <, ==, >; throws TemplateError when Python would raise TypeError.
int compare(const Value& a, const Value& b);
std::string to_str(const Value& v);   // str(v); Undefined prints ""
std::string to_repr(const Value& v);  // repr(v)
std::string float_repr(double d);

// json.dumps(v, ensure_ascii=False, indent=indent, separators=..., sort_keys=sort_keys).
struct DumpOptions {
  int indent = -1;              // <0: no indent
  std::string indent_str;       // used when indent is given as a string
  bool indent_is_string = false;
  std::string item_sep = ", ";
  std::string key_sep = ": ";
  bool sort_keys = false;
};
std::string dump_json(const Value& v, const DumpOptions& opts);

template <class Json>
Value from_json(const Json& j, uint32_t level = 0) {
  if (level > Value::kMaxDepth) throw TemplateError("input nested too deeply");
  switch (j.type()) {
    case Json::value_t::null: return Value::none();
    case Json::value_t::boolean: return Value::from_bool(j.template get<bool>());
    case Json::value_t::number_integer: return Value::from_int(j.template get<int64_t>());
    case Json::value_t::number_unsigned: return Value::from_int(static_cast<int64_t>(j.template get<uint64_t>()));
    case Json::value_t::number_float: return Value::from_float(j.template get<double>());
    case Json::value_t::string: return Value::from_string(j.template get<std::string>());
    case Json::value_t::array: {
      List items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json(e, level + 1));
      return Value::from_list(std::move(items));
    }
    case Json::value_t::object: {
      Dict d;
      d.items.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it) d.items.emplace_back(Value::from_string(it.key()), from_json(it.value(), level + 1));
      return Value::from_dict(std::move(d));
    }
    default: return Value::none();
  }
}

}  // namespace lorax::jinja
