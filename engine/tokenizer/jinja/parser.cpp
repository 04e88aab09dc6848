#include "tokenizer/jinja/parser.h"

#include <cstdlib>
#include <set>

#include "tokenizer/jinja/error.h"
#include "tokenizer/jinja/lexer.h"

namespace lorax::jinja {
namespace {

using K = Token::Kind;

class Parser {
 public:
  explicit Parser(std::vector<Token> toks) : t_(std::move(toks)) {}

  Body parse_root() {
    std::string stopped;
    Body body = parse_body({}, stopped);
    return body;
  }

 private:
  // ---- token helpers ----
  const Token& cur() const { return t_[i_]; }
  const Token& peek(size_t n = 1) const { return t_[std::min(i_ + n, t_.size() - 1)]; }
  void advance() {
    if (i_ + 1 < t_.size()) ++i_;
  }
  bool is_op(const char* op) const { return cur().kind == K::Op && cur().text == op; }
  bool is_name(const char* n) const { return cur().kind == K::Name && cur().text == n; }
  [[noreturn]] void fail(const std::string& msg) const {
    throw TemplateError(msg + " at line " + std::to_string(cur().line));
  }
  std::string describe(const Token& t) const {
    switch (t.kind) {
      case K::Eof: return "end of template";
      case K::BlockEnd: return "end of statement block";
      case K::VarEnd: return "end of print statement";
      case K::Name: return "'" + t.text + "'";
      case K::String: return "string";
      case K::Int:
      case K::Float: return "number";
      case K::Op: return "'" + t.text + "'";
      default: return "token";
    }
  }
  void expect_op(const char* op) {
    if (!is_op(op)) fail(std::string("expected '") + op + "', got " + describe(cur()));
    advance();
  }
  std::string expect_name() {
    if (cur().kind != K::Name) fail("expected a name, got " + describe(cur()));
    std::string n = cur().text;
    advance();
    return n;
  }
  void expect_block_end() {
    if (cur().kind != K::BlockEnd) fail("expected end of statement block, got " + describe(cur()));
    advance();
  }
  ExprPtr make(Expr::Kind k, int line) {
    auto e = std::make_shared<Expr>();
    e->kind = k;
    e->line = line;
    return e;
  }

  // ---- statements ----
  // Parses until `{% <one of ends> ...`; leaves the stream on that tag name.
  Body parse_body(const std::set<std::string>& ends, std::string& stopped_at) {
    Nest guard(*this);
    Body body;
    while (true) {
      const Token& tk = cur();
      if (tk.kind == K::Eof) {
        stopped_at.clear();
        return body;
      }
      if (tk.kind == K::Data) {
        auto s = std::make_shared<Stmt>();
        s->kind = Stmt::Kind::Data;
        s->line = tk.line;
        s->text = tk.text;
        body.push_back(s);
        advance();
      } else if (tk.kind == K::VarBegin) {
        int line = tk.line;
        advance();
        auto s = std::make_shared<Stmt>();
        s->kind = Stmt::Kind::Output;
        s->line = line;
        s->expr = parse_tuple(true, {});
        if (cur().kind != K::VarEnd) fail("expected end of print statement, got " + describe(cur()));
        advance();
        body.push_back(s);
      } else if (tk.kind == K::BlockBegin) {
        advance();
        if (cur().kind != K::Name) fail("tag name expected");
        if (ends.count(cur().text)) {
          stopped_at = cur().text;
          return body;
        }
        body.push_back(parse_statement());
      } else {
        fail("unexpected " + describe(tk));
      }
    }
  }

  // Parses a nested body that must end with one of `ends`; reports unclosed blocks.
  Body parse_nested(const std::string& tag, int line, const std::set<std::string>& ends, std::string& stopped) {
    Body body = parse_body(ends, stopped);
    if (stopped.empty()) {
      std::string want;
      for (const auto& e : ends) want += (want.empty() ? "'" : " or '") + e + "'";
      throw TemplateError("unclosed '" + tag + "' block opened at line " + std::to_string(line) +
                          ": reached end of template while looking for " + want);
    }
    return body;
  }

  void end_tag(const std::string& name) {
    (void)name;
    advance();  // the end tag's name
    expect_block_end();
  }

  StmtPtr stmt(Stmt::Kind k, int line) {
    auto s = std::make_shared<Stmt>();
    s->kind = k;
    s->line = line;
    return s;
  }

  StmtPtr parse_statement() {
    const Token& tk = cur();
    int line = tk.line;
    std::string tag = tk.text;
    if (tag == "if") return parse_if(line);
    if (tag == "for") return parse_for(line);
    if (tag == "set") return parse_set(line);
    if (tag == "macro") return parse_macro(line);
    if (tag == "call") return parse_call_block(line);
    if (tag == "filter") return parse_filter_block(line);
    if (tag == "with") return parse_with(line);
    if (tag == "generation") {
      // transformers' AssistantTracker: the body renders unchanged.
      advance();
      expect_block_end();
      auto s = stmt(Stmt::Kind::Scope, line);
      std::string stopped;
      s->body = parse_nested("generation", line, {"endgeneration"}, stopped);
      end_tag(stopped);
      return s;
    }
    if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) fail("'" + tag + "' outside of a loop");
      advance();
      expect_block_end();
      return stmt(tag == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue, line);
    }
    static const std::set<std::string> unsupported = {"include", "import", "from", "extends", "block", "autoescape", "do", "trans", "pluralize"};
    if (unsupported.count(tag)) fail("unsupported tag '" + tag + "'");
    if (tag.rfind("end", 0) == 0 || tag == "elif" || tag == "else") fail("unexpected tag '" + tag + "'");
    fail("unknown tag '" + tag + "'");
  }

  StmtPtr parse_if(int line) {
    auto s = stmt(Stmt::Kind::If, line);
    advance();
    ExprPtr test = parse_tuple(false, {});
    expect_block_end();
    while (true) {
      std::string stopped;
      Body body = parse_nested("if", line, {"elif", "else", "endif"}, stopped);
      s->branches.emplace_back(test, std::move(body));
      if (stopped == "elif") {
        advance();
        test = parse_tuple(false, {});
        expect_block_end();
        continue;
      }
      if (stopped == "else") {
        advance();
        expect_block_end();
        s->else_body = parse_nested("if", line, {"endif"}, stopped);
      }
      end_tag(stopped);
      return s;
    }
  }

  Target parse_target(bool with_namespace, const std::set<std::string>& end_names) {
    Target t;
    if (with_namespace && cur().kind == K::Name && peek().kind == K::Op && peek().text == ".") {
      t.kind = Target::Kind::NsAttr;
      t.names.push_back(expect_name());
      advance();
      t.attr = expect_name();
      return t;
    }
    bool paren = is_op("(");
    if (paren) advance();
    bool tuple = false;
    while (true) {
      if (cur().kind != K::Name || end_names.count(cur().text)) fail("can't assign to " + describe(cur()));
      t.names.push_back(expect_name());
      if (is_op(",")) {
        tuple = true;
        advance();
        if (cur().kind == K::Name && !end_names.count(cur().text)) continue;
        break;
      }
      break;
    }
    if (paren) expect_op(")");
    t.kind = tuple || paren ? Target::Kind::Tuple : Target::Kind::Name;
    if (t.kind == Target::Kind::Tuple && paren && t.names.size() == 1 && !tuple) t.kind = Target::Kind::Name;
    static const std::set<std::string> reserved = {"true", "false", "none", "True", "False", "None"};
    for (const auto& n : t.names)
      if (reserved.count(n)) fail("can't assign to constant '" + n + "'");
    return t;
  }

  StmtPtr parse_for(int line) {
    auto s = stmt(Stmt::Kind::For, line);
    advance();
    s->target = parse_target(false, {"in"});
    if (!is_name("in")) fail("expected 'in', got " + describe(cur()));
    advance();
    s->expr = parse_tuple(false, {"recursive"});
    if (is_name("if")) {
      advance();
      s->filter = parse_expression(true);
    }
    if (is_name("recursive")) fail("unsupported recursive for loop");
    expect_block_end();
    ++loop_depth_;
    std::string stopped;
    s->body = parse_nested("for", line, {"else", "endfor"}, stopped);
    --loop_depth_;
    if (stopped == "else") {
      advance();
      expect_block_end();
      int saved = loop_depth_;
      loop_depth_ = 0;  // break/continue in for-else are outside the loop
      s->else_body = parse_nested("for", line, {"endfor"}, stopped);
      loop_depth_ = saved;
    }
    end_tag(stopped);
    return s;
  }

  StmtPtr parse_set(int line) {
    advance();
    Target target = parse_target(true, {});
    if (is_op("=")) {
      advance();
      auto s = stmt(Stmt::Kind::Set, line);
      s->target = target;
      s->expr = parse_tuple(true, {});
      expect_block_end();
      return s;
    }
    auto s = stmt(Stmt::Kind::SetBlock, line);
    s->target = target;
    if (is_op("|")) parse_filter_chain(s->filters);
    expect_block_end();
    std::string stopped;
    s->body = parse_nested("set", line, {"endset"}, stopped);
    end_tag(stopped);
    return s;
  }

  void parse_filter_chain(std::vector<ExprPtr>& out) {
    bool first = true;
    while (first || is_op("|")) {
      if (is_op("|")) advance();
      first = false;
      out.push_back(parse_filter(nullptr));
    }
  }

  void parse_signature(Stmt& s) {
    expect_op("(");
    while (!is_op(")")) {
      if (!s.params.empty()) {
        expect_op(",");
        if (is_op(")")) break;
      }
      s.params.push_back(expect_name());
      if (is_op("=")) {
        advance();
        s.defaults.push_back(parse_expression(true));
      } else {
        if (!s.defaults.empty() && s.defaults.back()) fail("non-default argument follows default argument");
        s.defaults.push_back(nullptr);
      }
    }
    advance();
  }

  StmtPtr parse_macro(int line) {
    auto s = stmt(Stmt::Kind::Macro, line);
    advance();
    s->text = expect_name();
    parse_signature(*s);
    expect_block_end();
    int saved = loop_depth_;
    loop_depth_ = 0;
    std::string stopped;
    s->body = parse_nested("macro", line, {"endmacro"}, stopped);
    loop_depth_ = saved;
    end_tag(stopped);
    return s;
  }

  StmtPtr parse_call_block(int line) {
    auto s = stmt(Stmt::Kind::CallBlock, line);
    advance();
    if (is_op("(")) parse_signature(*s);
    s->expr = parse_expression(true);
    if (s->expr->kind != Expr::Kind::Call) fail("expected call");
    expect_block_end();
    std::string stopped;
    int saved = loop_depth_;
    loop_depth_ = 0;  // the body becomes the caller() macro: no enclosing loop
    s->body = parse_nested("call", line, {"endcall"}, stopped);
    loop_depth_ = saved;
    end_tag(stopped);
    return s;
  }

  StmtPtr parse_filter_block(int line) {
    auto s = stmt(Stmt::Kind::FilterBlock, line);
    advance();
    parse_filter_chain(s->filters);
    expect_block_end();
    std::string stopped;
    s->body = parse_nested("filter", line, {"endfilter"}, stopped);
    end_tag(stopped);
    return s;
  }

  StmtPtr parse_with(int line) {
    auto s = stmt(Stmt::Kind::With, line);
    advance();
    while (cur().kind != K::BlockEnd) {
      if (!s->assigns.empty()) expect_op(",");
      Target t = parse_target(false, {});
      expect_op("=");
      s->assigns.emplace_back(t, parse_expression(true));
    }
    expect_block_end();
    std::string stopped;
    s->body = parse_nested("with", line, {"endwith"}, stopped);
    end_tag(stopped);
    return s;
  }

  // ---- expressions ----
  bool tuple_end(const std::set<std::string>& extra) const {
    if (cur().kind == K::VarEnd || cur().kind == K::BlockEnd || cur().kind == K::Eof) return true;
    if (is_op(")")) return true;
    return cur().kind == K::Name && extra.count(cur().text);
  }

  ExprPtr parse_tuple(bool with_condexpr, const std::set<std::string>& extra, bool explicit_parens = false) {
    int line = cur().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (tuple_end(extra)) break;
      items.push_back(parse_expression(with_condexpr));
      if (is_op(","))
        is_tuple = true;
      else
        break;
    }
    if (!is_tuple) {
      if (!items.empty()) return items[0];
      if (!explicit_parens) fail("expected an expression, got " + describe(cur()));
    }
    auto e = make(Expr::Kind::Tuple, line);
    e->children = std::move(items);
    return e;
  }

  ExprPtr parse_expression(bool with_condexpr) { return with_condexpr ? parse_condexpr() : parse_or(); }

  ExprPtr parse_condexpr() {
    ExprPtr expr1 = parse_or();
    while (is_name("if")) {
      int line = cur().line;
      advance();
      ExprPtr test = parse_or();
      ExprPtr other;
      if (is_name("else")) {
        advance();
        other = parse_condexpr();
      }
      auto e = make(Expr::Kind::CondExpr, line);
      e->children = {test, expr1, other};
      expr1 = e;
    }
    return expr1;
  }

  ExprPtr binary(Expr::Kind k, const std::string& op, ExprPtr l, ExprPtr r, int line) {
    auto e = make(k, line);
    e->name = op;
    e->children = {std::move(l), std::move(r)};
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      int line = cur().line;
      advance();
      left = binary(Expr::Kind::Or, "or", left, parse_and(), line);
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      int line = cur().line;
      advance();
      left = binary(Expr::Kind::And, "and", left, parse_not(), line);
    }
    return left;
  }

  ExprPtr parse_not() {
    Nest guard(*this);
    if (is_name("not")) {
      int line = cur().line;
      advance();
      auto e = make(Expr::Kind::Not, line);
      e->children = {parse_not()};
      return e;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    int line = cur().line;
    ExprPtr first = parse_math1();
    auto e = make(Expr::Kind::Compare, line);
    e->children.push_back(first);
    while (true) {
      static const std::set<std::string> ops = {"==", "!=", ">", ">=", "<", "<="};
      if (cur().kind == K::Op && ops.count(cur().text)) {
        e->ops.push_back(cur().text);
        advance();
      } else if (is_name("in")) {
        e->ops.push_back("in");
        advance();
      } else if (is_name("not") && peek().kind == K::Name && peek().text == "in") {
        e->ops.push_back("notin");
        advance();
        advance();
      } else {
        break;
      }
      e->children.push_back(parse_math1());
    }
    return e->ops.empty() ? first : e;
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      std::string op = cur().text;
      int line = cur().line;
      advance();
      left = binary(Expr::Kind::Binary, op, left, parse_concat(), line);
    }
    return left;
  }

  ExprPtr parse_concat() {
    ExprPtr left = parse_math2();
    while (is_op("~")) {
      int line = cur().line;
      advance();
      left = binary(Expr::Kind::Binary, "~", left, parse_math2(), line);
    }
    return left;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = cur().text;
      int line = cur().line;
      advance();
      left = binary(Expr::Kind::Binary, op, left, parse_pow(), line);
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      int line = cur().line;
      advance();
      left = binary(Expr::Kind::Binary, "**", left, parse_unary(true), line);
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    Nest guard(*this);
    int line = cur().line;
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      bool neg = is_op("-");
      advance();
      node = make(neg ? Expr::Kind::Neg : Expr::Kind::Pos, line);
      node->children = {parse_unary(false)};
    } else {
      node = parse_primary();
    }
    node = parse_postfix(node);
    if (with_filter) node = parse_filter_expr(node);
    return node;
  }

  ExprPtr constant(Value v, int line) {
    auto e = make(Expr::Kind::Const, line);
    e->value = std::move(v);
    return e;
  }

  ExprPtr parse_primary() {
    const Token& tk = cur();
    int line = tk.line;
    switch (tk.kind) {
      case K::Name: {
        std::string n = tk.text;
        advance();
        if (n == "true" || n == "True") return constant(Value::from_bool(true), line);
        if (n == "false" || n == "False") return constant(Value::from_bool(false), line);
        if (n == "none" || n == "None") return constant(Value::none(), line);
        auto e = make(Expr::Kind::Name, line);
        e->name = n;
        return e;
      }
      case K::String: {
        std::string s;
        while (cur().kind == K::String) {  // adjacent literals concatenate, as in Python
          s += cur().text;
          advance();
        }
        return constant(Value::from_string(s), line);
      }
      case K::Int: {
        std::string text = tk.text;
        advance();
        try {
          return constant(Value::from_int(std::stoll(text)), line);
        } catch (const std::exception&) {
          fail("integer literal out of range");
        }
      }
      case K::Float: {
        std::string text = tk.text;
        advance();
        // Python's float(): out of range gives inf (or 0), which std::stod would throw for.
        return constant(Value::from_float(std::strtod(text.c_str(), nullptr)), line);
      }
      case K::Op:
        if (tk.text == "(") {
          advance();
          ExprPtr e = parse_tuple(true, {}, true);
          expect_op(")");
          return e;
        }
        if (tk.text == "[") return parse_list();
        if (tk.text == "{") return parse_dict();
        break;
      default: break;
    }
    fail("unexpected " + describe(tk));
  }

  ExprPtr parse_list() {
    auto e = make(Expr::Kind::List, cur().line);
    expect_op("[");
    while (!is_op("]")) {
      if (!e->children.empty()) expect_op(",");
      if (is_op("]")) break;
      e->children.push_back(parse_expression(true));
    }
    advance();
    return e;
  }

  ExprPtr parse_dict() {
    auto e = make(Expr::Kind::Dict, cur().line);
    expect_op("{");
    while (!is_op("}")) {
      if (!e->children.empty()) expect_op(",");
      if (is_op("}")) break;
      e->children.push_back(parse_expression(true));
      expect_op(":");
      e->children.push_back(parse_expression(true));
    }
    advance();
    return e;
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        node = parse_subscript(node);
      } else if (is_op("(")) {
        node = parse_call(node);
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        advance();
        node = parse_filter(node);
      } else if (is_name("is")) {
        node = parse_test(node);
      } else if (is_op("(")) {
        node = parse_call(node);
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    int line = cur().line;
    if (is_op(".")) {
      advance();
      if (cur().kind == K::Name) {
        auto e = make(Expr::Kind::Getattr, line);
        e->name = cur().text;
        e->children = {node};
        advance();
        return e;
      }
      if (cur().kind == K::Int) {
        auto e = make(Expr::Kind::Getitem, line);
        int64_t index = 0;
        try {
          index = std::stoll(cur().text);
        } catch (const std::exception&) {
          fail("integer literal out of range");
        }
        e->children = {node, constant(Value::from_int(index), line)};
        advance();
        return e;
      }
      fail("expected name or number after '.'");
    }
    advance();  // '['
    std::vector<ExprPtr> args;
    while (!is_op("]")) {
      if (!args.empty()) {
        expect_op(",");
        if (is_op("]")) break;
      }
      args.push_back(parse_subscribed());
    }
    advance();
    auto e = make(Expr::Kind::Getitem, line);
    ExprPtr index;
    if (args.size() == 1) {
      index = args[0];
    } else {
      if (args.empty()) fail("expected subscript expression");
      index = make(Expr::Kind::Tuple, line);
      index->children = args;
    }
    e->children = {node, index};
    return e;
  }

  ExprPtr parse_subscribed() {
    int line = cur().line;
    std::vector<ExprPtr> args;
    if (is_op(":")) {
      advance();
      args.push_back(nullptr);
    } else {
      ExprPtr node = parse_expression(true);
      if (!is_op(":")) return node;
      advance();
      args.push_back(node);
    }
    if (is_op(":") || is_op("]") || is_op(","))
      args.push_back(nullptr);
    else
      args.push_back(parse_expression(true));
    if (is_op(":")) {
      advance();
      if (is_op("]") || is_op(","))
        args.push_back(nullptr);
      else
        args.push_back(parse_expression(true));
    } else {
      args.push_back(nullptr);
    }
    auto e = make(Expr::Kind::Slice, line);
    e->children = args;
    return e;
  }

  void parse_call_args(Expr& e) {
    expect_op("(");
    bool any = false;
    while (!is_op(")")) {
      if (any) {
        expect_op(",");
        if (is_op(")")) break;
      }
      any = true;
      if (is_op("*")) {
        advance();
        e.dyn_args = parse_expression(true);
      } else if (is_op("**")) {
        advance();
        e.dyn_kwargs = parse_expression(true);
      } else if (cur().kind == K::Name && peek().kind == K::Op && peek().text == "=") {
        std::string key = cur().text;
        advance();
        advance();
        e.kwargs.emplace_back(key, parse_expression(true));
      } else {
        if (!e.kwargs.empty() || e.dyn_args || e.dyn_kwargs) fail("invalid syntax for function call expression");
        e.children.push_back(parse_expression(true));
      }
    }
    advance();
  }

  ExprPtr parse_call(ExprPtr node) {
    auto e = make(Expr::Kind::Call, cur().line);
    e->children.push_back(node);
    parse_call_args(*e);
    return e;
  }

  ExprPtr parse_filter(ExprPtr node) {
    auto e = make(Expr::Kind::Filter, cur().line);
    e->name = expect_name();
    while (is_op(".")) {
      advance();
      e->name += '.';
      e->name += expect_name();
    }
    e->children.push_back(node);
    if (is_op("(")) parse_call_args(*e);
    return e;
  }

  ExprPtr parse_test(ExprPtr node) {
    int line = cur().line;
    advance();  // 'is'
    bool negated = false;
    if (is_name("not")) {
      advance();
      negated = true;
    }
    auto e = make(Expr::Kind::Test, line);
    e->name = expect_name();
    e->children.push_back(node);
    if (is_op("(")) {
      parse_call_args(*e);
    } else if ((cur().kind == K::Name || cur().kind == K::String || cur().kind == K::Int || cur().kind == K::Float ||
                is_op("(") || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) fail("You cannot chain multiple tests with is");
      e->children.push_back(parse_postfix(parse_primary()));
    }
    if (!negated) return e;
    auto n = make(Expr::Kind::Not, line);
    n->children = {e};
    return n;
  }

  std::vector<Token> t_;
  size_t i_ = 0;
  int loop_depth_ = 0;
  int nesting_ = 0;

  // Bounds recursion so hostile nesting gets an error instead of a stack overflow.
  struct Nest {
    Parser& p;
    explicit Nest(Parser& parser) : p(parser) {
      if (++p.nesting_ > kMaxNesting) p.fail("template nesting too deep");
    }
    ~Nest() { --p.nesting_; }
  };
  static constexpr int kMaxNesting = 200;
};

}  // namespace

Body parse_template(const std::string& source) { return Parser(tokenize(source)).parse_root(); }

}  // namespace lorax::jinja
