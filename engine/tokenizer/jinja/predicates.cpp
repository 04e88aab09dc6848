// jinja2's built-in tests (`x is defined`, `x is string`, ...).
#include <map>
#include <set>

#include "tokenizer/jinja/support.h"
#include "tokenizer/jinja/utf8.h"

namespace lorax::jinja {
namespace {

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

}  // namespace

std::string missing_test_message(const std::string& name) {
  static const std::set<std::string> jinja2_only = {"filter", "test"};
  return (jinja2_only.count(name) ? "unsupported test '" : "unknown test '") + name + "'";
}

bool has_test(const std::string& name) { return tests().count(name) > 0; }

bool apply_test(const std::string& name, const Value& input, std::vector<Value>& args, Kwargs& kwargs) {
  auto it = tests().find(name);
  if (it == tests().end()) throw TemplateError(missing_test_message(name));
  if (!kwargs.empty()) throw TemplateError("test '" + name + "' takes no keyword arguments");
  return it->second(input, args);
}

}  // namespace lorax::jinja
