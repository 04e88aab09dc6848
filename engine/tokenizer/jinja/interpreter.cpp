#include "tokenizer/jinja/interpreter.h"

#include <optional>
#include <unordered_map>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/error.h"
#include "tokenizer/jinja/parser.h"
#include "tokenizer/jinja/scope.h"

namespace lorax::jinja {
namespace {

// Errors raised while evaluating gain the template line; raise_exception()
// messages pass through unchanged.
struct LocatedError : TemplateError {
  using TemplateError::TemplateError;
};

struct Frame {
  std::unordered_map<std::string, Value> vars;
  std::shared_ptr<Frame> parent;

  const Value* lookup(const std::string& name) const {
    for (const Frame* f = this; f; f = f->parent.get()) {
      auto it = f->vars.find(name);
      if (it != f->vars.end()) return &it->second;
    }
    return nullptr;
  }
};
using FramePtr = std::shared_ptr<Frame>;

enum class Flow { Normal, Break, Continue };

// jinja2 rejects unknown filters and tests when compiling, except inside `if`
// statements and conditional expressions ("soft" frames), where the error is
// deferred until the filter actually runs. Constructs that open an inner
// scope (loops, macros, blocks) are strict again.
void check_names(const Expr* e, bool soft);
bool mentions(const Body& body, const std::string& name);

void check_body(const Body& body, bool soft) {
  for (const auto& s : body) {
    if (s->kind == Stmt::Kind::Macro || s->kind == Stmt::Kind::CallBlock) {
      s->uses_varargs = mentions(s->body, "varargs");
      s->uses_kwargs = mentions(s->body, "kwargs");
      s->uses_caller = mentions(s->body, "caller");
    }
    switch (s->kind) {
      case Stmt::Kind::If:
        for (const auto& [test, b] : s->branches) {
          check_names(test.get(), true);
          check_body(b, true);
        }
        check_body(s->else_body, true);
        break;
      case Stmt::Kind::For:
        check_names(s->expr.get(), soft);
        check_names(s->filter.get(), false);
        check_body(s->body, false);
        check_body(s->else_body, false);
        break;
      case Stmt::Kind::Output:
      case Stmt::Kind::Set:
        check_names(s->expr.get(), soft);
        break;
      case Stmt::Kind::CallBlock:
        check_names(s->expr.get(), soft);
        for (const auto& d : s->defaults) check_names(d.get(), false);
        check_body(s->body, false);
        break;
      case Stmt::Kind::Scope:  // transformers' generation block is a call block: an inner scope
        check_body(s->body, false);
        break;
      default:
        for (const auto& f : s->filters) check_names(f.get(), false);
        for (const auto& d : s->defaults) check_names(d.get(), false);
        for (const auto& as : s->assigns) check_names(as.second.get(), false);
        check_body(s->body, false);
        check_body(s->else_body, false);
    }
  }
}

bool mentions(const Expr* e, const std::string& name) {
  if (!e) return false;
  if (e->kind == Expr::Kind::Name && e->name == name) return true;
  for (const auto& c : e->children)
    if (mentions(c.get(), name)) return true;
  for (const auto& kw : e->kwargs)
    if (mentions(kw.second.get(), name)) return true;
  return mentions(e->dyn_args.get(), name) || mentions(e->dyn_kwargs.get(), name);
}

bool mentions(const Body& body, const std::string& name) {
  for (const auto& s : body) {
    if (mentions(s->expr.get(), name) || mentions(s->filter.get(), name)) return true;
    for (const auto& [test, b] : s->branches)
      if (mentions(test.get(), name) || mentions(b, name)) return true;
    if (mentions(s->body, name) || mentions(s->else_body, name)) return true;
    for (const auto& f : s->filters)
      if (mentions(f.get(), name)) return true;
    for (const auto& d : s->defaults)
      if (mentions(d.get(), name)) return true;
    for (const auto& a : s->assigns)
      if (mentions(a.second.get(), name)) return true;
  }
  return false;
}

void check_names(const Expr* e, bool soft) {
  if (!e) return;
  if (!soft && e->kind == Expr::Kind::Filter && !has_filter(e->name))
    throw TemplateError(missing_filter_message(e->name) + " at line " + std::to_string(e->line));
  if (!soft && e->kind == Expr::Kind::Test && !has_test(e->name))
    throw TemplateError(missing_test_message(e->name) + " at line " + std::to_string(e->line));
  bool inner_soft = soft || e->kind == Expr::Kind::CondExpr;
  for (const auto& c : e->children) check_names(c.get(), inner_soft);
  for (const auto& kw : e->kwargs) check_names(kw.second.get(), inner_soft);
  check_names(e->dyn_args.get(), inner_soft);
  check_names(e->dyn_kwargs.get(), inner_soft);
}

class Renderer {
 public:
  Renderer(FramePtr context, Frame* root) : context_(std::move(context)), root_(root) {}
  void set_root(Frame* root) { root_ = root; }

  // A new frame for a loop body, macro call or block, with the names it binds
  // initialised the way jinja2's compiled code initialises them.
  FramePtr enter(const FramePtr& parent, const Decls& decls) {
    auto f = std::make_shared<Frame>();
    f->parent = parent;
    for (const auto& [name, init] : decls) {
      const Value* v = nullptr;
      if (init == Init::Resolve) v = context_->lookup(name);
      else if (init == Init::Alias) v = parent->lookup(name);
      f->vars[name] = v ? *v : Value::undefined("'" + name + "' is undefined");
    }
    return f;
  }

  Flow exec(const Body& body, const FramePtr& frame, std::string& out) {
    for (const auto& s : body) {
      Flow f = exec_one(*s, frame, out);
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

 private:
  [[noreturn]] static void located(const std::string& msg, int line) {
    throw LocatedError(msg + " at line " + std::to_string(line));
  }

  Flow exec_one(const Stmt& s, const FramePtr& frame, std::string& out) {
    switch (s.kind) {
      case Stmt::Kind::Data:
        out += s.text;
        RenderBudget::check(out.size());
        return Flow::Normal;
      case Stmt::Kind::Output:
        out += to_str(eval(*s.expr, frame));
        RenderBudget::check(out.size());
        return Flow::Normal;
      case Stmt::Kind::If:
        for (const auto& [test, body] : s.branches)
          if (eval(*test, frame).truthy()) return exec(body, frame, out);
        return exec(s.else_body, frame, out);
      case Stmt::Kind::For: return exec_for(s, frame, out);
      case Stmt::Kind::Set: assign(s.target, eval(*s.expr, frame), frame, s.line); return Flow::Normal;
      case Stmt::Kind::SetBlock: {
        auto inner = enter(frame, s.body_decls);
        std::string captured;
        // break/continue inside the block skip the assignment, as in jinja2's generated code.
        if (Flow fl = exec(s.body, inner, captured); fl != Flow::Normal) return fl;
        Value v = Value::from_string(captured);
        for (const auto& f : s.filters) v = apply_filter_expr(*f, v, frame);
        assign(s.target, v, frame, s.line);
        return Flow::Normal;
      }
      case Stmt::Kind::Macro: {
        Target t;
        t.names.push_back(s.text);
        assign(t, make_macro(s, frame, s.text), frame, s.line);
        return Flow::Normal;
      }
      case Stmt::Kind::CallBlock: {
        Value caller = make_macro(s, frame, "caller");
        const Expr& c = *s.expr;
        std::vector<Value> args;
        Kwargs kwargs;
        Value fn = eval(*c.children[0], frame);
        eval_args(c, frame, args, kwargs);
        kwargs.emplace_back("caller", caller);
        out += to_str(call(fn, args, kwargs));
        RenderBudget::check(out.size());
        return Flow::Normal;
      }
      case Stmt::Kind::FilterBlock: {
        std::string captured;
        auto inner = enter(frame, s.body_decls);
        // break/continue inside the block drop its buffered output, as in jinja2.
        if (Flow fl = exec(s.body, inner, captured); fl != Flow::Normal) return fl;
        Value v = Value::from_string(captured);
        for (const auto& f : s.filters) v = apply_filter_expr(*f, v, frame);
        out += to_str(v);
        RenderBudget::check(out.size());
        return Flow::Normal;
      }
      case Stmt::Kind::With: {
        auto inner = enter(frame, s.body_decls);
        for (const auto& [target, expr] : s.assigns) assign(target, eval(*expr, frame), inner, s.line);
        return exec(s.body, inner, out);
      }
      case Stmt::Kind::Scope: return exec(s.body, enter(frame, s.body_decls), out);
      case Stmt::Kind::Break: return Flow::Break;
      case Stmt::Kind::Continue: return Flow::Continue;
    }
    return Flow::Normal;
  }

  // Top-level assignments are also visible to later frames that resolve the
  // name from the render context (jinja2 exports them to context.vars).
  void export_root(const std::string& name, const Value& v, const FramePtr& frame) {
    if (frame.get() == root_ && !name.empty() && name[0] != '_') context_->vars[name] = v;
  }

  void assign(const Target& t, const Value& v, const FramePtr& frame, int line) {
    switch (t.kind) {
      case Target::Kind::Name:
        frame->vars[t.names[0]] = v;
        export_root(t.names[0], v, frame);
        return;
      case Target::Kind::NsAttr: {
        const Value* ns = frame->lookup(t.names[0]);
        if (!ns || ns->type != Value::Type::Namespace)
          located("cannot assign attribute on non-namespace object", line);
        ns->dict->set(Value::from_string(t.attr), v);
        return;
      }
      case Target::Kind::Tuple: {
        List items;
        try {
          items = iterate(v);
        } catch (const TemplateError& e) {
          located(std::string("cannot unpack non-iterable ") + v.type_name() + " object", line);
        }
        if (items.size() != t.names.size())
          located(items.size() > t.names.size()
                      ? "too many values to unpack (expected " + std::to_string(t.names.size()) + ")"
                      : "not enough values to unpack (expected " + std::to_string(t.names.size()) + ", got " +
                            std::to_string(items.size()) + ")",
                  line);
        for (size_t i = 0; i < items.size(); ++i) {
          frame->vars[t.names[i]] = items[i];
          export_root(t.names[i], items[i], frame);
        }
        return;
      }
    }
  }

  Flow exec_for(const Stmt& s, const FramePtr& frame, std::string& out) {
    Value seq = eval(*s.expr, frame);
    List items;
    try {
      items = iterate(seq);
    } catch (const LocatedError&) {
      throw;
    } catch (const TemplateError& e) {
      located(e.what(), s.line);
    }
    if (s.filter) {
      auto inner = std::make_shared<Frame>();
      inner->parent = frame;
      // The `if` clause filters before loop.* is computed, as in jinja2.
      List kept;
      for (const auto& item : items) {
        assign(s.target, item, inner, s.line);
        if (!eval(*s.filter, inner).truthy()) continue;
        if (s.target.kind != Target::Kind::Tuple) {
          kept.push_back(item);
          continue;
        }
        // jinja2's filter generator re-yields the unpacked names as a tuple.
        List parts;
        for (const auto& n : s.target.names) parts.push_back(inner->vars[n]);
        kept.push_back(Value::from_list(std::move(parts), true));
      }
      items = std::move(kept);
    }
    // jinja2 runs the else block unless some iteration reached the end of the
    // body: iterations left through break/continue do not count.
    bool completed_any = false;
    const int64_t n = static_cast<int64_t>(items.size());
    // loop.changed(*values) remembers the previous call's values across iterations.
    auto last_changed = std::make_shared<std::optional<Value>>();
    RenderCells::track(last_changed);
    for (int64_t i = 0; i < n; ++i) {
      if (++iterations_ > kMaxIterations)
        located("loop iteration limit exceeded (" + std::to_string(kMaxIterations) + " per render)", s.line);
      Dict loop;
      auto put = [&](const char* k, Value v) { loop.items.emplace_back(Value::from_string(k), std::move(v)); };
      put("index", Value::from_int(i + 1));
      put("index0", Value::from_int(i));
      put("revindex", Value::from_int(n - i));
      put("revindex0", Value::from_int(n - i - 1));
      put("first", Value::from_bool(i == 0));
      put("last", Value::from_bool(i == n - 1));
      put("length", Value::from_int(n));
      put("depth", Value::from_int(1));
      put("depth0", Value::from_int(0));
      if (i > 0) put("previtem", items[i - 1]);
      if (i + 1 < n) put("nextitem", items[i + 1]);
      put("cycle", Value::function("cycle", [i](std::vector<Value>& a, Kwargs&) {
            if (a.empty()) throw TemplateError("no items for cycling given");
            return a[static_cast<size_t>(i) % a.size()];
          }));
      // jinja2 gives every iteration a fresh scope: `set` inside the body never
      // carries over to the next iteration (hence namespace()).
      auto inner = enter(frame, s.body_decls);
      put("changed", Value::function("changed", [last_changed](std::vector<Value>& a, Kwargs&) {
            Value now = Value::from_list(a);
            if (*last_changed && equals(**last_changed, now)) return Value::from_bool(false);
            *last_changed = now;
            return Value::from_bool(true);
          }));
      inner->vars["loop"] = Value::from_dict(std::move(loop));
      assign(s.target, items[i], inner, s.line);
      Flow f = exec(s.body, inner, out);
      if (f == Flow::Break) break;
      if (f == Flow::Normal) completed_any = true;
    }
    if (!completed_any && !s.else_body.empty()) {
      exec(s.else_body, enter(frame, s.else_decls), out);
    }
    return Flow::Normal;
  }

  Value make_macro(const Stmt& s, const FramePtr& def_frame, const std::string& name) {
    const Stmt* stmt = &s;
    // A weak reference: the defining frame owns the macro, so a strong one would leak a cycle.
    std::weak_ptr<Frame> weak = def_frame;
    return Value::function(name, [this, stmt, weak, name](std::vector<Value>& args, Kwargs& kwargs) {
      FramePtr def = weak.lock();
      if (!def) throw TemplateError("macro '" + name + "' called outside of its scope");
      auto f = enter(def, stmt->body_decls);
      size_t np = stmt->params.size();
      if (args.size() > np && !stmt->uses_varargs)
        throw TemplateError("macro '" + name + "' takes not more than " + std::to_string(np) + " argument(s)");
      List varargs;
      std::vector<bool> bound_param(np, false);
      for (size_t i = 0; i < args.size(); ++i) {
        if (i < np) {
          f->vars[stmt->params[i]] = args[i];
          bound_param[i] = true;
        } else {
          varargs.push_back(args[i]);
        }
      }
      Dict extra;
      for (auto& [k, v] : kwargs) {
        bool bound = false;
        for (size_t i = args.size(); i < np && !bound; ++i) {
          if (stmt->params[i] != k) continue;
          f->vars[k] = v;
          bound_param[i] = bound = true;
        }
        if (bound) continue;
        if (k == "caller" && stmt->uses_caller) {
          f->vars[k] = v;
          continue;
        }
        if (!stmt->uses_kwargs) {
          if (k == "caller")
            throw TemplateError("macro '" + name + "' was invoked with two values for the special caller argument. This is most likely a bug.");
          throw TemplateError("macro '" + name + "' takes no keyword argument '" + k + "'");
        }
        extra.set(Value::from_string(k), v);
      }
      for (size_t i = args.size(); i < np; ++i) {
        if (bound_param[i]) continue;
        f->vars[stmt->params[i]] = stmt->defaults[i] ? eval(*stmt->defaults[i], f)
                                                     : Value::undefined("parameter '" + stmt->params[i] + "' was not provided");
      }
      if (stmt->uses_caller && !f->vars.count("caller")) f->vars["caller"] = Value::undefined("No caller defined");
      if (stmt->uses_varargs) f->vars["varargs"] = Value::from_list(std::move(varargs), true);
      if (stmt->uses_kwargs) f->vars["kwargs"] = Value::from_dict(std::move(extra));
      // jinja2 stops runaway recursion with Python's RecursionError; so do we, before the C++ stack runs out.
      if (++macro_depth_ > kMaxMacroDepth) {
        macro_depth_ = 0;
        throw TemplateError("maximum macro recursion depth exceeded");
      }
      std::string out;
      exec(stmt->body, f, out);
      --macro_depth_;
      return Value::from_string(out);
    });
  }

  void eval_args(const Expr& e, const FramePtr& frame, std::vector<Value>& args, Kwargs& kwargs, size_t first = 1) {
    for (size_t i = first; i < e.children.size(); ++i) args.push_back(eval(*e.children[i], frame));
    for (const auto& [k, v] : e.kwargs) kwargs.emplace_back(k, eval(*v, frame));
    if (e.dyn_args)
      for (auto& v : iterate(eval(*e.dyn_args, frame))) args.push_back(v);
    if (e.dyn_kwargs) {
      Value d = eval(*e.dyn_kwargs, frame);
      if (!d.is_dict()) located("argument after ** must be a mapping", e.line);
      for (const auto& [k, v] : d.dict->items) kwargs.emplace_back(to_str(k), v);
    }
  }

  Value apply_filter_expr(const Expr& f, const Value& input, const FramePtr& frame) {
    std::vector<Value> args;
    Kwargs kwargs;
    eval_args(f, frame, args, kwargs);
    return apply_filter(f.name, input, args, kwargs);
  }

 public:
  Value eval(const Expr& e, const FramePtr& frame) {
    try {
      return eval_inner(e, frame);
    } catch (const LocatedError&) {
      throw;
    } catch (const RaisedError&) {
      throw;
    } catch (const TemplateError& err) {
      located(err.what(), e.line);
    }
  }

 private:
  static constexpr int kMaxMacroDepth = 200;
  // Total loop iterations allowed in one render, so runaway templates end with an error.
  // The fuzz build lowers it (LORAX_FUZZ in CMakeLists.txt): sanitizers make an iteration ~30x slower.
#ifdef LORAX_JINJA_MAX_ITERATIONS
  static constexpr int64_t kMaxIterations = LORAX_JINJA_MAX_ITERATIONS;
#else
  static constexpr int64_t kMaxIterations = 2'000'000;
#endif
  int macro_depth_ = 0;
  int64_t iterations_ = 0;
  FramePtr context_;
  Frame* root_;

  Value eval_inner(const Expr& e, const FramePtr& frame) {
    using K = Expr::Kind;
    switch (e.kind) {
      case K::Const: return e.value;
      case K::Name: {
        const Value* v = frame->lookup(e.name);
        return v ? *v : Value::undefined("'" + e.name + "' is undefined");
      }
      case K::Getattr: return get_attr(eval(*e.children[0], frame), e.name);
      case K::Getitem: {
        Value obj = eval(*e.children[0], frame);
        const Expr& idx = *e.children[1];
        if (idx.kind == K::Slice) {
          auto part = [&](size_t i) { return idx.children[i] ? eval(*idx.children[i], frame) : Value::none(); };
          return slice(obj, part(0), part(1), part(2));
        }
        return get_item(obj, eval(idx, frame));
      }
      case K::Slice: throw TemplateError("slice outside of subscript");
      case K::Call: {
        Value fn = eval(*e.children[0], frame);
        std::vector<Value> args;
        Kwargs kwargs;
        eval_args(e, frame, args, kwargs);
        return call(fn, args, kwargs);
      }
      case K::Filter: {
        Value input = eval(*e.children[0], frame);
        return apply_filter_expr(e, input, frame);
      }
      case K::Test: {
        Value input = eval(*e.children[0], frame);
        std::vector<Value> args;
        Kwargs kwargs;
        eval_args(e, frame, args, kwargs);
        return Value::from_bool(apply_test(e.name, input, args, kwargs));
      }
      case K::Neg:
      case K::Pos: {
        Value v = eval(*e.children[0], frame);
        if (v.is_undefined()) fail_undefined(v);
        if (!v.is_number()) throw TemplateError("bad operand type for unary " + std::string(e.kind == K::Neg ? "-" : "+") + ": '" + v.type_name() + "'");
        if (e.kind == K::Pos) return v.type == Value::Type::Bool ? Value::from_int(v.boolean) : v;
        if (v.type == Value::Type::Float) return Value::from_float(-v.real);
        return Value::from_int(-(v.type == Value::Type::Bool ? v.boolean : v.integer));
      }
      case K::Not: return Value::from_bool(!eval(*e.children[0], frame).truthy());
      case K::And: {
        Value l = eval(*e.children[0], frame);
        return l.truthy() ? eval(*e.children[1], frame) : l;
      }
      case K::Or: {
        Value l = eval(*e.children[0], frame);
        return l.truthy() ? l : eval(*e.children[1], frame);
      }
      case K::Binary: return binary_op(e.name, eval(*e.children[0], frame), eval(*e.children[1], frame));
      case K::Compare: {
        Value left = eval(*e.children[0], frame);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value right = eval(*e.children[i + 1], frame);
          const std::string& op = e.ops[i];
          bool ok;
          if (op == "==") ok = equals(left, right);
          else if (op == "!=") ok = !equals(left, right);
          else if (op == "in") ok = contains(right, left);
          else if (op == "notin") ok = !contains(right, left);
          else {
            int c = compare(left, right);
            ok = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
          }
          if (!ok) return Value::from_bool(false);
          left = std::move(right);
        }
        return Value::from_bool(true);
      }
      case K::CondExpr: {
        if (eval(*e.children[0], frame).truthy()) return eval(*e.children[1], frame);
        if (e.children[2]) return eval(*e.children[2], frame);
        return Value::undefined("the inline if-expression evaluated to false and no else section was defined.");
      }
      case K::List:
      case K::Tuple: {
        List items;
        for (const auto& c : e.children) items.push_back(eval(*c, frame));
        return Value::from_list(std::move(items), e.kind == K::Tuple);
      }
      case K::Dict: {
        Dict d;
        for (size_t i = 0; i + 1 < e.children.size(); i += 2) d.set(eval(*e.children[i], frame), eval(*e.children[i + 1], frame));
        return Value::from_dict(std::move(d));
      }
    }
    throw TemplateError("unsupported expression");
  }
};

}  // namespace

Template::Template(const std::string& source) : body_(parse_template(source)) {
  check_body(body_, false);
  root_decls_ = analyze_scopes(body_);
}

std::string Template::render(const Value& context) const {
  auto globals = std::make_shared<Frame>();
  Dict g;
  add_globals(g);
  for (auto& [k, v] : g.items) globals->vars[k.str] = v;
  auto ctx = std::make_shared<Frame>();
  ctx->parent = globals;
  if (context.is_dict())
    for (const auto& [k, v] : context.dict->items) ctx->vars[to_str(k)] = v;
  Renderer r(ctx, nullptr);
  FramePtr root = r.enter(ctx, root_decls_);
  r.set_root(root.get());
  std::string out;
  RenderCells cells;  // after the frames: emptied while they still hold what the template made
  RenderBudget budget;
  r.exec(body_, root, out);
  return out;
}

}  // namespace lorax::jinja
