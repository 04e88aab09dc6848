// Hand-written Jinja interpreter for chat templates: Debian 12 packages no C++
// Jinja library, so this implements the subset Hugging Face chat templates use
// (with jinja2 + transformers semantics) over nlohmann::json inputs.
#pragma once
#include <string>

#include "tokenizer/jinja/ast.h"

namespace lorax::jinja {

class Template {
 public:
  // Parses and checks filter/test names; throws TemplateError.
  explicit Template(const std::string& source);
  // `context` must be a Dict value; its entries become template variables.
  std::string render(const Value& context) const;

 private:
  Body body_;
  Decls root_decls_;
};

}  // namespace lorax::jinja
