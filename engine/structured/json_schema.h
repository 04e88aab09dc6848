// JSON Schema -> a graph of value nodes that the byte matcher (json_matcher.h)
// walks. Compiled once per schema (the server caches compiled schemas by their
// text). The subset is what OpenAI/LoRAX clients send: type, properties,
// required, additionalProperties, items, enum, const, anyOf/oneOf, allOf of one,
// $ref into $defs/definitions (recursion allowed), min/maxLength, min/maxItems,
// minimum/maximum and their exclusive forms, format date/time/date-time/uuid/
// email. Any other keyword is refused by name (SchemaError), never ignored.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lorax::structured {

struct SchemaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class NodeKind : uint8_t { Never, Any, Literals, String, Integer, Number, Object, Array, AnyOf };
enum class StringFormat : uint8_t { None, Date, Time, DateTime, Uuid, Email };

// Numbers are bounded by long double intervals; a bound that is absent is infinite.
struct NumberRange {
  long double lo = -INFINITY, hi = INFINITY;
  bool lo_exclusive = false, hi_exclusive = false;
  bool contains(long double v) const {
    return (lo_exclusive ? v > lo : v >= lo) && (hi_exclusive ? v < hi : v <= hi);
  }
  bool bounded() const { return lo != -INFINITY || hi != INFINITY; }
};

struct Property {
  std::string name;
  int32_t node = 0;
  bool required = false;
};

// A trie of property names (keys are matched byte by byte while they are written).
struct KeyTrie {
  struct Edge {
    uint8_t byte;
    int32_t child;
  };
  struct TrieNode {
    std::vector<Edge> edges;
    int32_t property = -1;  // index into Node::properties when a name ends here
    uint64_t below = 0;     // properties whose names pass through this node (bit i: properties[i])
  };
  std::vector<TrieNode> nodes;  // nodes[0] is the root
  int32_t child(int32_t at, uint8_t byte) const {
    for (const Edge& e : nodes[at].edges)
      if (e.byte == byte) return e.child;
    return -1;
  }
};

struct Node {
  NodeKind kind = NodeKind::Never;
  // Literals: the JSON texts (compact), sorted so that the candidates sharing a
  // prefix form one index range.
  std::vector<std::string> literals;
  // String
  int64_t min_length = 0, max_length = -1;  // in code points, -1 unbounded
  StringFormat format = StringFormat::None;
  // Integer / Number
  NumberRange range;
  // Object
  std::vector<Property> properties;
  KeyTrie keys;                // the properties a value can satisfy
  int32_t additional = -1;     // node of other keys' values; -1: no other keys
  uint64_t required_mask = 0;  // bit i: properties[i] is required
  // Array
  int32_t items = -1;
  int64_t min_items = 0, max_items = -1;
  // AnyOf
  std::vector<int32_t> alternatives;
  // The non-AnyOf satisfiable nodes a value of this node may be (itself unless AnyOf).
  std::vector<int32_t> leaves;
  // Some JSON text matches this node (computed after compiling, as a fixpoint, so
  // that recursion without a base case is found).
  bool satisfiable = false;
};

struct SchemaLimits {
  size_t max_nodes = 4096;        // nodes after expanding types and references
  size_t max_properties = 64;     // per object (a bit mask tracks which are written)
  size_t max_literal_bytes = 1 << 16;
};

class Schema {
 public:
  // Throws SchemaError naming the keyword for what is not supported, and for a
  // schema that no JSON text can satisfy.
  static std::shared_ptr<const Schema> compile(const nlohmann::json& schema, const SchemaLimits& limits = {});
  // Any JSON value (OpenAI's json_object, LoRAX's json_object without a schema):
  // at the top level an object.
  static std::shared_ptr<const Schema> any_object();

  const Node& node(int32_t i) const { return nodes_[i]; }
  int32_t root() const { return root_; }
  int32_t any() const { return any_; }
  int32_t any_literals() const { return any_literals_; }  // false, null, true
  size_t size() const { return nodes_.size(); }

 private:
  friend class SchemaCompiler;
  std::vector<Node> nodes_;
  int32_t root_ = 0, any_ = 0, any_literals_ = 0;
};

// Schema::compile behind a process-wide cache keyed by the schema's compact
// text (requests repeating a schema compile it once); thread-safe.
std::shared_ptr<const Schema> compile_cached(const nlohmann::json& schema, const SchemaLimits& limits = {});

}  // namespace lorax::structured
