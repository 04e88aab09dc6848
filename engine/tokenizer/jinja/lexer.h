// Splits template source into data and tag tokens the way jinja2's lexer does
// with transformers' settings (trim_blocks=True, lstrip_blocks=True,
// keep_trailing_newline=False): whitespace control `{%-`/`-%}`/`{%+`, the first
// newline after a block or comment tag dropped, indentation before a block tag
// at line start dropped, and `{% raw %}` kept verbatim.
#pragma once
#include <string>
#include <vector>

namespace lorax::jinja {

struct Token {
  enum class Kind { Data, BlockBegin, BlockEnd, VarBegin, VarEnd, Name, String, Int, Float, Op, Eof };
  Kind kind;
  std::string text;  // Data text, name, operator, decoded string literal, number text
  int line;
};

// Throws TemplateError on unterminated tags or characters jinja2 rejects.
std::vector<Token> tokenize(const std::string& source);

}  // namespace lorax::jinja
