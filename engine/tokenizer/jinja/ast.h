// Syntax tree of a parsed template: expressions and statements, each with the
// source line used in error messages.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja/value.h"

namespace lorax::jinja {

struct Expr;
using ExprPtr = std::shared_ptr<Expr>;

struct Expr {
  enum class Kind {
    Const, Name, Getattr, Getitem, Slice, Call, Filter, Test, Neg, Pos, Not,
    Binary, Compare, And, Or, CondExpr, List, Tuple, Dict
  };
  Kind kind;
  int line = 0;
  Value value;                    // Const
  std::string name;               // Name; Getattr attribute; Filter/Test name; Binary operator
  // Getattr: [obj]; Getitem: [obj, index]; Slice: [start, stop, step] (entries may be null);
  // Call: [callee, args...]; Filter/Test: [operand (null inside filter blocks), args...];
  // Neg/Pos/Not: [x]; Binary/And/Or: [l, r]; Compare: [first, operands...];
  // CondExpr: [test, then, else (may be null)]; List/Tuple: items; Dict: k0, v0, k1, v1, ...
  std::vector<ExprPtr> children;
  std::vector<std::string> ops;   // Compare: "==", "!=", "<", "<=", ">", ">=", "in", "notin"
  std::vector<std::pair<std::string, ExprPtr>> kwargs;  // Call/Filter/Test keyword arguments
  ExprPtr dyn_args, dyn_kwargs;   // *args / **kwargs in calls
};

// Left side of `set`, `for` and `with`: a name, several names, or `ns.attr`.
struct Target {
  enum class Kind { Name, Tuple, NsAttr };
  Kind kind = Kind::Name;
  std::vector<std::string> names;
  std::string attr;
};

// How a name a frame binds starts out when the frame is entered, mirroring
// jinja2's compile-time symbol tables: looked up in the render context
// (Resolve), copied from the enclosing frame (Alias), or unset (Undefined).
enum class Init : uint8_t { Resolve, Alias, Undefined };
using Decls = std::vector<std::pair<std::string, Init>>;

struct Stmt;
using StmtPtr = std::shared_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind { Data, Output, If, For, Set, SetBlock, Macro, CallBlock, FilterBlock, Break, Continue, With, Scope };
  Kind kind;
  int line = 0;
  std::string text;                                 // Data; Macro name
  ExprPtr expr;                                     // Output, Set value, For iterable, CallBlock call
  ExprPtr filter;                                   // For's `if` clause
  Target target;                                    // Set, SetBlock, For
  std::vector<std::pair<ExprPtr, Body>> branches;   // If/elif
  Body body;
  Body else_body;                                   // If else, For else
  std::vector<ExprPtr> filters;                     // SetBlock and FilterBlock filter chain
  std::vector<std::string> params;                  // Macro / CallBlock caller parameters
  std::vector<ExprPtr> defaults;                    // per parameter, null when none
  std::vector<std::pair<Target, ExprPtr>> assigns;  // With
  // Macro / CallBlock: whether the body mentions these names, which is what
  // lets jinja2 macros accept extra positional / keyword / caller arguments.
  bool uses_varargs = false, uses_kwargs = false, uses_caller = false;
  // Names bound by the frame of `body` (For, Macro, CallBlock, SetBlock,
  // FilterBlock, With, Scope) and of a For's `else_body`.
  Decls body_decls, else_decls;
};

}  // namespace lorax::jinja
