#include "tokenizer/jinja/support.h"

namespace lorax::jinja {

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
  std::string why = "'";  // built stepwise: g++ 12 misreports `"'" + std::string&&` (-Wrestrict)
  why += object_type(obj);
  why += "' has no attribute '";
  why += name;
  why += "'";
  return Value::undefined(why);
}

}  // namespace lorax::jinja
