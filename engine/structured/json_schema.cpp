#include "structured/json_schema.h"

#include <algorithm>
#include <cmath>
#include <list>
#include <map>
#include <mutex>
#include <set>

namespace lorax::structured {
namespace {

using json = nlohmann::json;

// Integers and the integer part of numbers are written with at most this many
// digits, so that every value the matcher tracks is exact in a double and a
// model cannot write digits forever.
constexpr int kMaxIntegerDigits = 15;
constexpr int kMaxRefDepth = 64;

const std::set<std::string> kAnnotations = {"title",   "description", "$schema",  "$id",       "$comment", "default",
                                            "examples", "deprecated",  "readOnly", "writeOnly", "$defs",    "definitions"};
const std::set<std::string> kStringKeys = {"minLength", "maxLength", "format"};
const std::set<std::string> kNumberKeys = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"};
const std::set<std::string> kObjectKeys = {"properties", "required", "additionalProperties"};
const std::set<std::string> kArrayKeys = {"items", "minItems", "maxItems", "uniqueItems"};

Node node_of(NodeKind kind) {
  Node n;
  n.kind = kind;
  return n;
}

std::string quoted(const std::string& keyword) { return "`" + keyword + "`"; }

int64_t count_value(const json& s, const char* key) {
  const json& v = s[key];
  if (!v.is_number_integer() || (v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() < 0))
    throw SchemaError(quoted(key) + " must be a non-negative integer");
  return v.get<int64_t>();
}

long double number_value(const json& s, const char* key) {
  if (!s[key].is_number()) throw SchemaError(quoted(key) + " must be a number");
  return s[key].get<long double>();
}

// The schema's types; when "type" is absent, the kinds its keywords constrain
// (a value of another kind would satisfy them vacuously, but generating one
// would ignore what the client wrote), else every kind.
std::vector<std::string> types_of(const json& s) {
  if (s.contains("type")) {
    const json& t = s["type"];
    std::vector<std::string> out;
    if (t.is_string()) out.push_back(t.get<std::string>());
    else if (t.is_array() && !t.empty())
      for (const json& x : t) {
        if (!x.is_string()) throw SchemaError("`type` must be a string or a list of strings");
        out.push_back(x.get<std::string>());
      }
    else throw SchemaError("`type` must be a string or a list of strings");
    static const std::set<std::string> known = {"string", "integer", "number", "boolean", "null", "object", "array"};
    for (const std::string& x : out)
      if (!known.count(x)) throw SchemaError("unknown `type` \"" + x + "\"");
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    if (std::count(out.begin(), out.end(), "integer") && std::count(out.begin(), out.end(), "number"))
      out.erase(std::find(out.begin(), out.end(), "integer"));  // every integer is a number
    return out;
  }
  std::vector<std::string> out;
  auto has_any = [&](const std::set<std::string>& keys) {
    for (const std::string& k : keys)
      if (s.contains(k)) return true;
    return false;
  };
  if (has_any(kObjectKeys)) out.push_back("object");
  if (has_any(kArrayKeys)) out.push_back("array");
  if (has_any(kStringKeys)) out.push_back("string");
  if (has_any(kNumberKeys)) out.push_back("number");
  return out;  // empty: any value
}

bool value_has_type(const json& v, const std::string& type) {
  if (type == "string") return v.is_string();
  if (type == "integer") return v.is_number_integer() || (v.is_number_float() && std::trunc(v.get<double>()) == v.get<double>());
  if (type == "number") return v.is_number();
  if (type == "boolean") return v.is_boolean();
  if (type == "null") return v.is_null();
  if (type == "object") return v.is_object();
  return v.is_array();
}

std::optional<StringFormat> format_of(const std::string& f) {
  if (f == "date") return StringFormat::Date;
  if (f == "time") return StringFormat::Time;
  if (f == "date-time") return StringFormat::DateTime;
  if (f == "uuid") return StringFormat::Uuid;
  if (f == "email") return StringFormat::Email;
  return std::nullopt;
}

}  // namespace

class SchemaCompiler {
 public:
  SchemaCompiler(const json& document, const SchemaLimits& limits, Schema& out)
      : doc_(document), limits_(limits), out_(out) {}

  void run() {
    out_.nodes_.clear();
    out_.any_ = add(node_of(NodeKind::Any));
    Node lits = node_of(NodeKind::Literals);
    lits.literals = {"false", "null", "true"};
    out_.any_literals_ = add(std::move(lits));
    never_ = add(node_of(NodeKind::Never));
    out_.root_ = compile(doc_, 0);
    solve_satisfiable();
    if (!out_.nodes_[out_.root_].satisfiable) throw SchemaError("no JSON value satisfies the schema");
    build_key_tries();
    for (size_t i = 0; i < out_.nodes_.size(); ++i) {
      std::set<int32_t> seen;
      collect_leaves(static_cast<int32_t>(i), seen, out_.nodes_[i].leaves);
    }
  }

 private:
  int32_t add(Node n) {
    if (out_.nodes_.size() >= limits_.max_nodes)
      throw SchemaError("the schema is too large (more than " + std::to_string(limits_.max_nodes) + " nodes)");
    out_.nodes_.push_back(std::move(n));
    return static_cast<int32_t>(out_.nodes_.size() - 1);
  }

  int32_t compile(const json& s, int depth) {
    if (depth > kMaxRefDepth) throw SchemaError("the schema nests more than " + std::to_string(kMaxRefDepth) + " levels");
    if (s.is_boolean()) return s.get<bool>() ? out_.any_ : never_;
    if (!s.is_object()) throw SchemaError("a schema must be an object or a boolean");
    std::vector<std::string> active;  // keywords that constrain
    for (auto& [key, _] : s.items())
      if (!kAnnotations.count(key)) active.push_back(key);
    auto alone = [&](const char* keyword) {
      for (const std::string& k : active)
        if (k != keyword) throw SchemaError(quoted(keyword) + " together with " + quoted(k) + " is not supported");
    };
    if (s.contains("$ref")) {
      alone("$ref");
      return reference(s["$ref"], depth);
    }
    for (const char* key : {"anyOf", "oneOf"})
      if (s.contains(key)) {
        alone(key);
        // oneOf as anyOf: exclusivity is not enforced (alternatives the client
        // wrote are meant to be distinct; checking overlap is undecidable here).
        const json& alts = s[key];
        if (!alts.is_array() || alts.empty()) throw SchemaError(quoted(key) + " must be a non-empty list of schemas");
        Node n = node_of(NodeKind::AnyOf);
        for (const json& a : alts) n.alternatives.push_back(compile(a, depth + 1));
        return add(std::move(n));
      }
    if (s.contains("allOf")) {
      alone("allOf");
      const json& all = s["allOf"];
      if (!all.is_array() || all.size() != 1)
        throw SchemaError("`allOf` is supported with exactly one schema (intersections are not)");
      return compile(all[0], depth + 1);
    }
    for (const std::string& k : active) {
      static const std::set<std::string> value_keys = {"type", "enum", "const"};
      if (!value_keys.count(k) && !kStringKeys.count(k) && !kNumberKeys.count(k) && !kObjectKeys.count(k) &&
          !kArrayKeys.count(k))
        throw SchemaError("JSON Schema keyword " + quoted(k) + " is not supported");
    }
    const std::vector<std::string> types = types_of(s);
    if (s.contains("enum") || s.contains("const")) return literals(s, types, active);
    if (types.empty()) return out_.any_;
    if (types.size() == 1) return typed(s, types[0], depth);
    Node n = node_of(NodeKind::AnyOf);
    for (const std::string& t : types) n.alternatives.push_back(typed(s, t, depth));
    return add(std::move(n));
  }

  int32_t reference(const json& ref, int depth) {
    if (!ref.is_string()) throw SchemaError("`$ref` must be a string");
    const std::string r = ref.get<std::string>();
    if (auto it = refs_.find(r); it != refs_.end()) return it->second;
    if (r.empty() || r[0] != '#') throw SchemaError("`$ref` \"" + r + "\": only references into this schema (#...) are supported");
    const json* target = nullptr;
    try {
      target = &doc_.at(json::json_pointer(r.substr(1)));
    } catch (const std::exception&) {
      throw SchemaError("`$ref` \"" + r + "\" does not name a part of the schema");
    }
    // A placeholder first, so that a recursive reference finds it.
    Node placeholder = node_of(NodeKind::AnyOf);
    const int32_t at = add(std::move(placeholder));
    refs_[r] = at;
    const int32_t body = compile(*target, depth + 1);
    out_.nodes_[at].alternatives = {body};
    return at;
  }

  int32_t literals(const json& s, const std::vector<std::string>& types, const std::vector<std::string>& active) {
    for (const std::string& k : active)
      if (k != "enum" && k != "const" && k != "type")
        throw SchemaError("`enum`/`const` together with " + quoted(k) + " is not supported");
    std::vector<json> values;
    if (s.contains("const")) values.push_back(s["const"]);
    if (s.contains("enum")) {
      if (!s["enum"].is_array()) throw SchemaError("`enum` must be a list");
      for (const json& v : s["enum"]) values.push_back(v);
    }
    if (s.contains("const") && s.contains("enum")) {  // both: the const, if the enum has it
      const json c = values[0];
      bool listed = std::find(values.begin() + 1, values.end(), c) != values.end();
      values.assign(listed ? 1 : 0, c);
    }
    Node n = node_of(NodeKind::Literals);
    size_t bytes = 0;
    for (const json& v : values) {
      bool typed_ok = types.empty();
      for (const std::string& t : types) typed_ok = typed_ok || value_has_type(v, t);
      if (!typed_ok) continue;
      n.literals.push_back(v.dump());
      bytes += n.literals.back().size();
    }
    if (bytes > limits_.max_literal_bytes)
      throw SchemaError("`enum`/`const` values exceed " + std::to_string(limits_.max_literal_bytes) + " bytes");
    std::sort(n.literals.begin(), n.literals.end());
    n.literals.erase(std::unique(n.literals.begin(), n.literals.end()), n.literals.end());
    return add(std::move(n));
  }

  int32_t typed(const json& s, const std::string& type, int depth) {
    if (type == "null" || type == "boolean") {
      Node n = node_of(NodeKind::Literals);
      n.literals = type == "null" ? std::vector<std::string>{"null"} : std::vector<std::string>{"false", "true"};
      return add(std::move(n));
    }
    if (type == "string") return string_node(s);
    if (type == "integer" || type == "number") return number_node(s, type == "integer");
    if (type == "object") return object_node(s, depth);
    return array_node(s, depth);
  }

  int32_t string_node(const json& s) {
    Node n = node_of(NodeKind::String);
    if (s.contains("minLength")) n.min_length = count_value(s, "minLength");
    if (s.contains("maxLength")) n.max_length = count_value(s, "maxLength");
    if (s.contains("format")) {
      if (!s["format"].is_string()) throw SchemaError("`format` must be a string");
      auto f = format_of(s["format"].get<std::string>());
      if (!f)
        throw SchemaError("string `format` \"" + s["format"].get<std::string>() +
                          "\" is not supported (date, time, date-time, uuid, email are)");
      if (s.contains("minLength") || s.contains("maxLength"))
        throw SchemaError("`format` together with `minLength`/`maxLength` is not supported");
      n.format = *f;
    }
    return add(std::move(n));
  }

  int32_t number_node(const json& s, bool integer) {
    Node n = node_of(integer ? NodeKind::Integer : NodeKind::Number);
    NumberRange& r = n.range;
    if (s.contains("minimum")) r.lo = number_value(s, "minimum");
    if (s.contains("maximum")) r.hi = number_value(s, "maximum");
    // Draft 4 writes exclusivity as a boolean beside minimum/maximum; later drafts as the bound itself.
    for (auto [key, is_lo] : {std::pair{"exclusiveMinimum", true}, std::pair{"exclusiveMaximum", false}}) {
      if (!s.contains(key)) continue;
      const json& v = s[key];
      long double& bound = is_lo ? r.lo : r.hi;
      bool& exclusive = is_lo ? r.lo_exclusive : r.hi_exclusive;
      if (v.is_boolean()) {
        exclusive = v.get<bool>();
      } else {
        const long double x = number_value(s, key);
        if (is_lo ? x >= bound : x <= bound) {
          bound = x;
          exclusive = true;
        }
      }
    }
    if (integer) {  // inclusive integer bounds within the digits the matcher writes
      const long double cap = std::pow(10.0L, kMaxIntegerDigits) - 1;
      long double lo = r.lo == -INFINITY ? -cap : (r.lo_exclusive ? std::floor(r.lo) + 1 : std::ceil(r.lo));
      long double hi = r.hi == INFINITY ? cap : (r.hi_exclusive ? std::ceil(r.hi) - 1 : std::floor(r.hi));
      r = {std::max(lo, -cap), std::min(hi, cap), false, false};
    }
    return add(std::move(n));
  }

  int32_t object_node(const json& s, int depth) {
    Node n = node_of(NodeKind::Object);
    n.additional = out_.any_;
    if (s.contains("additionalProperties")) n.additional = compile(s["additionalProperties"], depth + 1);
    if (s.contains("properties")) {
      if (!s["properties"].is_object()) throw SchemaError("`properties` must be an object");
      for (auto& [name, sub] : s["properties"].items()) n.properties.push_back({name, compile(sub, depth + 1), false});
    }
    if (s.contains("required")) {
      if (!s["required"].is_array()) throw SchemaError("`required` must be a list of strings");
      for (const json& r : s["required"]) {
        if (!r.is_string()) throw SchemaError("`required` must be a list of strings");
        const std::string name = r.get<std::string>();
        auto it = std::find_if(n.properties.begin(), n.properties.end(), [&](const Property& p) { return p.name == name; });
        // A required key the properties do not describe takes additionalProperties' schema.
        if (it == n.properties.end()) it = n.properties.insert(n.properties.end(), {name, n.additional, false});
        it->required = true;
      }
    }
    if (n.properties.size() > limits_.max_properties)
      throw SchemaError("an object with more than " + std::to_string(limits_.max_properties) +
                        " `properties` is not supported");
    for (size_t i = 0; i < n.properties.size(); ++i) {
      // Keys are matched as written, without escapes (json_matcher.h).
      for (unsigned char c : n.properties[i].name)
        if (c == '"' || c == '\\' || c < 0x20)
          throw SchemaError("property names with quotes, backslashes or control characters are not supported");
      if (n.properties[i].node < 0) n.properties[i].node = never_;  // required, but no other keys allowed
      if (n.properties[i].required) n.required_mask |= uint64_t{1} << i;
    }
    return add(std::move(n));
  }

  int32_t array_node(const json& s, int depth) {
    Node n = node_of(NodeKind::Array);
    n.items = out_.any_;
    if (s.contains("items")) {
      if (s["items"].is_array()) throw SchemaError("`items` as a list (tuple validation) is not supported");
      n.items = compile(s["items"], depth + 1);
    }
    if (s.contains("minItems")) n.min_items = count_value(s, "minItems");
    if (s.contains("maxItems")) n.max_items = count_value(s, "maxItems");
    if (s.contains("uniqueItems")) {
      if (!s["uniqueItems"].is_boolean()) throw SchemaError("`uniqueItems` must be a boolean");
      if (s["uniqueItems"].get<bool>()) throw SchemaError("`uniqueItems: true` is not supported");
    }
    return add(std::move(n));
  }

  bool satisfiable_now(const Node& n) const {
    auto sat = [&](int32_t i) { return i >= 0 && out_.nodes_[i].satisfiable; };
    switch (n.kind) {
      case NodeKind::Never: return false;
      case NodeKind::Any: return true;
      case NodeKind::Literals: return !n.literals.empty();
      case NodeKind::String: return n.max_length < 0 || n.min_length <= n.max_length;
      case NodeKind::Integer: return n.range.lo <= n.range.hi;
      case NodeKind::Number:
        return n.range.lo < n.range.hi || (n.range.lo == n.range.hi && !n.range.lo_exclusive && !n.range.hi_exclusive);
      case NodeKind::Object:
        for (const Property& p : n.properties)
          if (p.required && !sat(p.node)) return false;
        return true;
      case NodeKind::Array:
        return (n.max_items < 0 || n.min_items <= n.max_items) && (n.min_items == 0 || sat(n.items));
      case NodeKind::AnyOf:
        for (int32_t a : n.alternatives)
          if (sat(a)) return true;
        return false;
    }
    return false;
  }

  // Least fixpoint: a node is satisfiable once some text for it can be built from
  // nodes already known satisfiable, so recursion without a base case stays false.
  void solve_satisfiable() {
    for (bool changed = true; changed;) {
      changed = false;
      for (Node& n : out_.nodes_)
        if (!n.satisfiable && satisfiable_now(n)) n.satisfiable = changed = true;
    }
  }

  void collect_leaves(int32_t at, std::set<int32_t>& seen, std::vector<int32_t>& out) const {
    const Node& n = out_.nodes_[at];
    if (!n.satisfiable || !seen.insert(at).second) return;
    if (n.kind != NodeKind::AnyOf) {
      out.push_back(at);
      return;
    }
    for (int32_t a : n.alternatives) collect_leaves(a, seen, out);
  }

  void build_key_tries() {
    for (Node& n : out_.nodes_) {
      if (n.kind != NodeKind::Object) continue;
      if (n.additional >= 0 && !out_.nodes_[n.additional].satisfiable) n.additional = -1;
      n.keys.nodes.assign(1, {});
      for (size_t i = 0; i < n.properties.size(); ++i) {
        if (!out_.nodes_[n.properties[i].node].satisfiable) continue;
        int32_t at = 0;
        n.keys.nodes[0].below |= uint64_t{1} << i;
        for (unsigned char c : n.properties[i].name) {
          int32_t next = n.keys.child(at, c);
          if (next < 0) {
            next = static_cast<int32_t>(n.keys.nodes.size());
            n.keys.nodes[at].edges.push_back({c, next});
            n.keys.nodes.push_back({});
          }
          at = next;
          n.keys.nodes[at].below |= uint64_t{1} << i;
        }
        n.keys.nodes[at].property = static_cast<int32_t>(i);
      }
    }
  }

  const json& doc_;
  const SchemaLimits& limits_;
  Schema& out_;
  int32_t never_ = 0;
  std::map<std::string, int32_t> refs_;
};

std::shared_ptr<const Schema> Schema::compile(const json& schema, const SchemaLimits& limits) {
  auto s = std::make_shared<Schema>();
  SchemaCompiler(schema, limits, *s).run();
  return s;
}

std::shared_ptr<const Schema> compile_cached(const json& schema, const SchemaLimits& limits) {
  constexpr size_t kCapacity = 256;
  static std::mutex mu;
  static std::list<std::pair<std::string, std::shared_ptr<const Schema>>> recent;  // most recent first
  const std::string key = schema.dump();
  {
    std::lock_guard<std::mutex> lock(mu);
    for (auto it = recent.begin(); it != recent.end(); ++it)
      if (it->first == key) {
        recent.splice(recent.begin(), recent, it);
        return it->second;
      }
  }
  auto compiled = Schema::compile(schema, limits);  // errors are not cached: they cost as much to find again
  std::lock_guard<std::mutex> lock(mu);
  recent.emplace_front(key, compiled);
  if (recent.size() > kCapacity) recent.pop_back();
  return compiled;
}

std::shared_ptr<const Schema> Schema::any_object() {
  static const std::shared_ptr<const Schema> any = compile(json{{"type", "object"}});
  return any;
}

}  // namespace lorax::structured
