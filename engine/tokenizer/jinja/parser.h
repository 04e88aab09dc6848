// Recursive-descent parser for the Jinja subset chat templates use, following
// jinja2's grammar and operator precedence (filters bind tighter than
// arithmetic, `not` looser than comparisons, `a if c else b` loosest).
#pragma once
#include <string>

#include "tokenizer/jinja/ast.h"

namespace lorax::jinja {

// Throws TemplateError "<what> at line N" on malformed or unsupported syntax.
Body parse_template(const std::string& source);

}  // namespace lorax::jinja
