// Static variable scoping as jinja2 compiles it: each loop body, macro, call,
// filter/set block and with-block is its own frame, and what a name means in
// a frame is fixed by which names the frame (and its ancestors) assign
// anywhere, not by execution order. For example a top-level `{% set x %}`
// that comes after a loop makes `x` undefined inside that loop even when the
// context has an `x`. This pass records each frame's bindings in the AST.
#pragma once
#include "tokenizer/jinja/ast.h"

namespace lorax::jinja {

// Fills body_decls/else_decls of every frame-opening statement and returns
// the root frame's bindings. Requires uses_varargs/kwargs/caller to be set.
Decls analyze_scopes(const Body& root);

}  // namespace lorax::jinja
