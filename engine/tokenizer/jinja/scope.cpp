#include "tokenizer/jinja/scope.h"

#include <map>
#include <set>

namespace lorax::jinja {
namespace {

// One frame's symbol table: name -> how it is bound (params are fixed by the construct).
struct Scope {
  enum Kind : int { Param = -1 };
  const Scope* parent = nullptr;
  std::map<std::string, int> refs;
  std::set<std::string> stores;

  bool find_ref(const std::string& n) const {
    for (const Scope* s = this; s; s = s->parent)
      if (s->refs.count(n)) return true;
    return false;
  }
  void load(const std::string& n) {
    if (!find_ref(n)) refs[n] = static_cast<int>(Init::Resolve);
  }
  void store(const std::string& n) {
    stores.insert(n);
    if (refs.count(n)) return;
    refs[n] = static_cast<int>(parent && parent->find_ref(n) ? Init::Alias : Init::Undefined);
  }
  void param(const std::string& n) {  // parameters count as assigned, like jinja2's declare_parameter
    stores.insert(n);
    refs[n] = Param;
  }

  // A name assigned in only some branches of an `if` keeps its outer meaning
  // where the branch did not run.
  void branch_update(const std::vector<Scope>& branches) {
    std::map<std::string, size_t> count;
    for (const auto& b : branches)
      for (const auto& t : b.stores)
        if (!stores.count(t)) ++count[t];
    for (const auto& b : branches) {
      for (const auto& [n, a] : b.refs) refs[n] = a;
      stores.insert(b.stores.begin(), b.stores.end());
    }
    for (const auto& [n, c] : count) {
      if (c == branches.size()) continue;
      refs[n] = static_cast<int>(parent && parent->find_ref(n) ? Init::Alias : Init::Resolve);
    }
  }

  Decls decls() const {
    Decls out;
    for (const auto& [n, a] : refs)
      if (a != Param) out.emplace_back(n, static_cast<Init>(a));
    return out;
  }
};

// A body to analyse once its enclosing frame is complete.
struct Pending {
  const Body* body;
  Decls* out;
  std::vector<std::string> params;
  std::vector<std::string> stores_first;  // with-block targets
  std::vector<const Expr*> loads_first;   // macro defaults, block filters
};

void loads(Scope& sc, const Expr* e) {
  if (!e) return;
  if (e->kind == Expr::Kind::Name) sc.load(e->name);
  for (const auto& c : e->children) loads(sc, c.get());
  for (const auto& kw : e->kwargs) loads(sc, kw.second.get());
  loads(sc, e->dyn_args.get());
  loads(sc, e->dyn_kwargs.get());
}

void store_target(Scope& sc, const Target& t) {
  if (t.kind == Target::Kind::NsAttr)
    sc.load(t.names[0]);
  else
    for (const auto& n : t.names) sc.store(n);
}

std::vector<std::string> frame_params(const Stmt& s) {
  std::vector<std::string> p = s.params;
  if (s.uses_varargs) p.push_back("varargs");
  if (s.uses_kwargs) p.push_back("kwargs");
  if (s.uses_caller) p.push_back("caller");
  return p;
}

void visit_body(Scope& sc, const Body& body, std::vector<Pending>& pending);

void visit_stmt(Scope& sc, Stmt& s, std::vector<Pending>& pending) {
  switch (s.kind) {
    case Stmt::Kind::Data:
    case Stmt::Kind::Break:
    case Stmt::Kind::Continue: return;
    case Stmt::Kind::Output: loads(sc, s.expr.get()); return;
    case Stmt::Kind::Set:
      loads(sc, s.expr.get());
      store_target(sc, s.target);
      return;
    case Stmt::Kind::SetBlock:
      store_target(sc, s.target);
      pending.push_back({&s.body, &s.body_decls, {}, {}, {}});
      for (const auto& f : s.filters) pending.back().loads_first.push_back(f.get());
      return;
    case Stmt::Kind::If: {
      loads(sc, s.branches[0].first.get());
      std::vector<Scope> branches(3, sc);
      visit_body(branches[0], s.branches[0].second, pending);
      for (size_t i = 1; i < s.branches.size(); ++i) {  // elifs behave like nested ifs
        Scope& b = branches[1];
        loads(b, s.branches[i].first.get());
        std::vector<Scope> inner(3, b);
        visit_body(inner[0], s.branches[i].second, pending);
        b.branch_update(inner);
      }
      visit_body(branches[2], s.else_body, pending);
      sc.branch_update(branches);
      return;
    }
    case Stmt::Kind::For: {
      loads(sc, s.expr.get());
      std::vector<std::string> params = s.target.names;
      params.push_back("loop");
      pending.push_back({&s.body, &s.body_decls, params, {}, {}});
      pending.push_back({&s.else_body, &s.else_decls, {}, {}, {}});
      return;
    }
    case Stmt::Kind::Macro:
      sc.store(s.text);
      pending.push_back({&s.body, &s.body_decls, frame_params(s), {}, {}});
      for (const auto& d : s.defaults) pending.back().loads_first.push_back(d.get());
      return;
    case Stmt::Kind::CallBlock:
      loads(sc, s.expr.get());
      pending.push_back({&s.body, &s.body_decls, frame_params(s), {}, {}});
      for (const auto& d : s.defaults) pending.back().loads_first.push_back(d.get());
      return;
    case Stmt::Kind::FilterBlock:
      for (const auto& f : s.filters) loads(sc, f.get());
      pending.push_back({&s.body, &s.body_decls, {}, {}, {}});
      return;
    case Stmt::Kind::With: {
      for (const auto& a : s.assigns) loads(sc, a.second.get());
      Pending p{&s.body, &s.body_decls, {}, {}, {}};
      for (const auto& a : s.assigns)
        for (const auto& n : a.first.names) p.stores_first.push_back(n);
      pending.push_back(p);
      return;
    }
    case Stmt::Kind::Scope:
      pending.push_back({&s.body, &s.body_decls, {}, {}, {}});
      return;
  }
}

void visit_body(Scope& sc, const Body& body, std::vector<Pending>& pending) {
  for (const auto& s : body) visit_stmt(sc, *s, pending);
}

// Analyses one frame, then the frames nested in it (which see its final table).
void analyze_frame(Scope& sc, const Body& body, const std::vector<const Expr*>& first_loads,
                   const std::vector<std::string>& first_stores) {
  std::vector<Pending> pending;
  for (const auto* e : first_loads) loads(sc, e);
  for (const auto& n : first_stores) sc.store(n);
  visit_body(sc, body, pending);
  for (auto& p : pending) {
    Scope inner;
    inner.parent = &sc;
    for (const auto& n : p.params) inner.param(n);
    analyze_frame(inner, *p.body, p.loads_first, p.stores_first);
    *p.out = inner.decls();
  }
}

}  // namespace

Decls analyze_scopes(const Body& root) {
  Scope sc;
  analyze_frame(sc, root, {}, {});
  return sc.decls();
}

}  // namespace lorax::jinja
