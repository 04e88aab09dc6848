// Helpers shared by the built-in filters, tests, methods and operators:
// Python-style argument binding, value constructors and str operations.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/error.h"
#include "tokenizer/jinja/value.h"

namespace lorax::jinja {

using T = Value::Type;

// Binds positional and keyword arguments to named parameters like a Python
// signature; `spec` holds each parameter's name and default.
struct Param {
  const char* name;
  Value def;
};
std::vector<Value> bind(const std::string& fname, std::vector<Value>& args, Kwargs& kwargs,
                        const std::vector<Param>& spec);

Value S(std::string s);
Value I(int64_t i);
Value B(bool b);
Value N();
int64_t to_index(const Value& v, const char* what);  // int (or bool) argument, else TemplateError
const std::string& need_str(const Value& v, const std::string& what);
std::string object_type(const Value& v);  // "dict object", as jinja2 names types in messages
Value missing_attr(const Value& obj, const std::string& name);
inline std::string soft_str(const Value& v) { return to_str(v); }

// Python str operations on UTF-8 strings (strings.cpp).
std::vector<std::string> split_ws(const std::string& s, int64_t maxsplit);
std::vector<std::string> split_sep(const std::string& s, const std::string& sep, int64_t maxsplit);
std::vector<std::string> rsplit_sep(const std::string& s, const std::string& sep, int64_t maxsplit);
std::vector<std::string> splitlines(const std::string& s, bool keepends);
std::string replace_all(const std::string& s, const std::string& old, const std::string& rep, int64_t count);
std::string map_case(const std::string& s, bool upper);
std::string capitalize(const std::string& s);
std::string py_title(const std::string& s);
std::string jinja_title(const std::string& s);
std::string html_escape(const std::string& s);
std::string py_format(const std::string& fmt, std::vector<Value>& args, Kwargs& kwargs);
std::string percent_format(const std::string& fmt, const Value& rhs);
std::u32string chars_arg(const Value& v, std::u32string& storage, bool& given);
Value str_list(const std::vector<std::string>& parts);
bool starts_or_ends(const std::string& s, const Value& what, bool start);

}  // namespace lorax::jinja
