// jinja2's built-in filters and tests, the global functions transformers adds
// (raise_exception, strftime_now) and the Python methods templates call on
// str/dict/list values, with the sandbox's refusal of mutating methods.
#pragma once
#include <string>
#include <vector>

#include "tokenizer/jinja/error.h"
#include "tokenizer/jinja/value.h"

namespace lorax::jinja {

// What raise_exception() throws: its message must reach the caller verbatim.
struct RaisedError : TemplateError {
  using TemplateError::TemplateError;
};

bool has_filter(const std::string& name);
bool has_test(const std::string& name);
// "unknown filter 'x'" or, for jinja2 built-ins this interpreter lacks, "unsupported filter 'x'".
std::string missing_filter_message(const std::string& name);
std::string missing_test_message(const std::string& name);

Value apply_filter(const std::string& name, const Value& input, std::vector<Value>& args, Kwargs& kwargs);
bool apply_test(const std::string& name, const Value& input, std::vector<Value>& args, Kwargs& kwargs);

// jinja2's environment.getattr / getitem (attribute first vs. item first).
Value get_attr(const Value& obj, const std::string& name);
Value get_item(const Value& obj, const Value& key);
Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step);

// Python iteration: list/tuple items, dict keys, string characters; Undefined is empty.
List iterate(const Value& v);
bool contains(const Value& container, const Value& item);  // Python `item in container`
Value binary_op(const std::string& op, const Value& a, const Value& b);
Value call(const Value& fn, std::vector<Value>& args, Kwargs& kwargs);

// Throws the error jinja2's Undefined raises when it is used as a value.
[[noreturn]] void fail_undefined(const Value& u);

// range, namespace, dict, raise_exception, strftime_now.
void add_globals(Dict& globals);

}  // namespace lorax::jinja
