// Schema compilation: what is refused (by keyword name) and what no text can
// satisfy (found at compile time, so a request never starts a hopeless decode).
#include <cstdio>
#include <gtest/gtest.h>

#include "structured/json_schema.h"

namespace lorax::structured {
namespace {

using json = nlohmann::json;

std::string error_of(const json& schema, const SchemaLimits& limits = {}) {
  try {
    Schema::compile(schema, limits);
  } catch (const SchemaError& e) {
    return e.what();
  }
  return "";
}

TEST(JsonSchema, UnsupportedKeywordsAreRefusedByName) {
  for (const char* keyword : {"pattern", "multipleOf", "patternProperties", "minProperties", "not", "if", "prefixItems",
                              "contains", "propertyNames", "dependentRequired", "unevaluatedProperties"}) {
    json s = {{"type", "string"}, {keyword, 1}};
    EXPECT_NE(error_of(s).find(keyword), std::string::npos) << keyword << ": " << error_of(s);
  }
  EXPECT_NE(error_of({{"type", "string"}, {"format", "hostname"}}).find("hostname"), std::string::npos);
  EXPECT_NE(error_of({{"type", "array"}, {"uniqueItems", true}}).find("uniqueItems"), std::string::npos);
  EXPECT_NE(error_of({{"allOf", {json::object(), json::object()}}}).find("allOf"), std::string::npos);
  EXPECT_NE(error_of({{"$ref", "http://example.com/s.json"}}).find("$ref"), std::string::npos);
  EXPECT_NE(error_of({{"$ref", "#/$defs/missing"}}).find("does not name"), std::string::npos);
  EXPECT_NE(error_of({{"type", "strung"}}).find("strung"), std::string::npos);
}

TEST(JsonSchema, AnnotationsAreAccepted) {
  EXPECT_EQ(error_of({{"title", "t"}, {"description", "d"}, {"$schema", "x"}, {"default", 1}, {"examples", {1}},
                      {"type", "integer"}}),
            "");
}

TEST(JsonSchema, ImpossibleSchemasAreRefused) {
  const std::string none = "no JSON value satisfies the schema";
  EXPECT_EQ(error_of(false), none);
  EXPECT_EQ(error_of({{"type", "integer"}, {"minimum", 5}, {"maximum", 4}}), none);
  EXPECT_EQ(error_of({{"type", "integer"}, {"minimum", 1.2}, {"maximum", 1.8}}), none);
  EXPECT_EQ(error_of({{"type", "number"}, {"exclusiveMinimum", 1}, {"maximum", 1}}), none);
  EXPECT_EQ(error_of({{"type", "string"}, {"minLength", 3}, {"maxLength", 2}}), none);
  EXPECT_EQ(error_of({{"type", "array"}, {"minItems", 1}, {"items", false}}), none);
  EXPECT_EQ(error_of({{"enum", {1, 2}}, {"type", "string"}}), none);
  EXPECT_EQ(error_of({{"type", "object"}, {"required", {"a"}}, {"additionalProperties", false}}), none);
  // Recursion without a base case: every value would be infinite.
  EXPECT_EQ(error_of({{"type", "object"}, {"properties", {{"next", {{"$ref", "#"}}}}}, {"required", {"next"}}}), none);
  EXPECT_EQ(error_of({{"$ref", "#"}}), none);
}

TEST(JsonSchema, RecursionWithABaseCaseCompiles) {
  json tree = {{"type", "object"},
               {"properties", {{"value", {{"type", "integer"}}}, {"children", {{"type", "array"}, {"items", {{"$ref", "#"}}}}}}},
               {"required", {"value", "children"}}};
  EXPECT_EQ(error_of(tree), "");
}

TEST(JsonSchema, SizeLimitsAreErrors) {
  json props = json::object();
  char name[16];
  for (int i = 0; i < 65; ++i) {
    std::snprintf(name, sizeof name, "p%d", i);
    props[name] = {{"type", "null"}};
  }
  EXPECT_NE(error_of({{"type", "object"}, {"properties", props}}).find("64"), std::string::npos);
  SchemaLimits small;
  small.max_nodes = 8;
  json wide = {{"anyOf", json::array()}};
  for (int i = 0; i < 10; ++i) wide["anyOf"].push_back({{"type", "integer"}});
  EXPECT_NE(error_of(wide, small).find("too large"), std::string::npos);
}

TEST(JsonSchema, TypeListsBecomeAlternatives) {
  auto s = Schema::compile({{"type", {"string", "null"}}});
  EXPECT_EQ(s->node(s->root()).kind, NodeKind::AnyOf);
  EXPECT_EQ(s->node(s->root()).leaves.size(), 2u);
}

}  // namespace
}  // namespace lorax::structured
