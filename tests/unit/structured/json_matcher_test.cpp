// The byte matcher against JSON Schema's own rules: complete texts it must
// accept, texts it must refuse (each by the rule named), and prefixes that must
// stay open. The end-to-end tests judge sampled outputs with Python's jsonschema.
#include <gtest/gtest.h>

#include "structured/json_matcher.h"

namespace lorax::structured {
namespace {

using json = nlohmann::json;

struct Probe {
  std::shared_ptr<const Schema> schema;
  explicit Probe(const json& s) : schema(Schema::compile(s)) {}
  bool prefix(const std::string& text) const {
    MatchState st = initial_state(*schema);
    return advance(*schema, st, text);
  }
  bool complete(const std::string& text) const {
    MatchState st = initial_state(*schema);
    return advance(*schema, st, text) && st.can_finish(*schema);
  }
};

TEST(JsonMatcher, AnyObject) {
  Probe p(json{{"type", "object"}});
  for (const char* ok : {"{}", "{\"a\": 1}", " {\"a\":[1,2.5e3,\"x\",null,true,{\"b\":false}]}", "{\"\xc3\xa9\":\"\\u00e9\\n\xc3\xa9\"}",
                         "{\"a\": -0.5}", "{\n  \"k\": \"v\"\n}"})
    EXPECT_TRUE(p.complete(ok)) << ok;
  for (const char* bad : {"[]", "{", "{\"a\"}", "{\"a\":}", "{,}", "{\"a\":1,}", "{\"a\":01}", "{\"a\":1.}", "{\"a\":tru}",
                          "{\"a\":\"\x01\"}", "{\"a\":\"\\x\"}", "{\"a\":\"\xc3\"}", "{\"a\":\"\xed\xa0\x80\"}",
                          "{\"a\":\"\\ud800\"}", "{} ", "{}{}", "{\"a\":1}x", "{\"\\n\":1}"})
    EXPECT_FALSE(p.complete(bad)) << bad;
  EXPECT_TRUE(p.prefix("{\"a\": 12"));
  EXPECT_FALSE(p.prefix(std::string("{") + std::string(kMaxWhitespace + 1, ' ')));
  EXPECT_TRUE(p.prefix(std::string("{") + std::string(kMaxWhitespace, ' ')));
}

TEST(JsonMatcher, PropertiesRequiredAndAdditional) {
  Probe p(json{{"type", "object"},
               {"properties", {{"name", {{"type", "string"}}}, {"age", {{"type", "integer"}}}}},
               {"required", {"name"}},
               {"additionalProperties", false}});
  EXPECT_TRUE(p.complete("{\"name\":\"x\"}"));
  EXPECT_TRUE(p.complete("{\"age\":3,\"name\":\"x\"}"));
  EXPECT_FALSE(p.complete("{\"age\":3}"));                 // required
  EXPECT_FALSE(p.complete("{\"name\":\"x\",\"other\":1}"));  // additionalProperties false
  EXPECT_FALSE(p.prefix("{\"nam\""));
  EXPECT_FALSE(p.prefix("{\"name\":1"));                   // wrong type
  EXPECT_FALSE(p.prefix("{\"name\":\"x\",\"name\""));      // written twice
  EXPECT_FALSE(p.prefix("{\"name\":\"x\",\"age\":1,"));    // nothing left to write
  Probe open(json{{"type", "object"}, {"properties", {{"name", {{"type", "string"}}}}}});
  EXPECT_TRUE(open.complete("{\"names\":[1]}"));            // other keys take any value
  EXPECT_TRUE(open.complete("{\"nam\":null,\"name\":\"\"}"));
  EXPECT_FALSE(open.prefix("{\"name\":1"));
}

TEST(JsonMatcher, StringsLengthsAndFormats) {
  Probe len(json{{"type", "string"}, {"minLength", 2}, {"maxLength", 3}});
  EXPECT_FALSE(len.complete("\"a\""));
  EXPECT_TRUE(len.complete("\"ab\""));
  EXPECT_TRUE(len.complete("\"\xc3\xa9\\n\xe2\x82\xac\""));  // three code points
  EXPECT_FALSE(len.prefix("\"abcd"));
  Probe uuid(json{{"type", "string"}, {"format", "uuid"}});
  EXPECT_TRUE(uuid.complete("\"123e4567-e89b-12d3-a456-426614174000\""));
  EXPECT_FALSE(uuid.prefix("\"123e4567e"));
  Probe date(json{{"type", "string"}, {"format", "date"}});
  EXPECT_TRUE(date.complete("\"2024-02-29\""));
  EXPECT_FALSE(date.prefix("\"2023-02-29"));  // not a leap year
  EXPECT_FALSE(date.prefix("\"2023-13"));
  EXPECT_FALSE(date.prefix("\"0000"));
  EXPECT_FALSE(date.prefix("\"2023-04-31"));
  Probe dt(json{{"type", "string"}, {"format", "date-time"}});
  EXPECT_TRUE(dt.complete("\"2024-01-31T23:59:59Z\""));
  EXPECT_TRUE(dt.complete("\"2024-01-31T00:00:00.123+05:30\""));
  EXPECT_FALSE(dt.prefix("\"2024-01-31T24"));
  EXPECT_FALSE(dt.complete("\"2024-01-31T10:00:00\""));  // RFC 3339 needs an offset
  Probe email(json{{"type", "string"}, {"format", "email"}});
  EXPECT_TRUE(email.complete("\"a.b@example.com\""));
  EXPECT_FALSE(email.complete("\"@example.com\""));
  EXPECT_FALSE(email.complete("\"a@\""));
}

TEST(JsonMatcher, NumberRanges) {
  Probe small(json{{"type", "integer"}, {"minimum", 10}, {"maximum", 250}});
  EXPECT_TRUE(small.complete("10"));
  EXPECT_TRUE(small.complete("250"));
  EXPECT_TRUE(small.prefix("2"));     // 20..29, 200..250 follow
  EXPECT_FALSE(small.complete("2"));
  EXPECT_TRUE(small.complete("26"));
  EXPECT_TRUE(small.prefix("3"));     // 30..39
  EXPECT_FALSE(small.complete("3"));
  EXPECT_FALSE(small.prefix("300"));
  EXPECT_FALSE(small.prefix("-"));
  EXPECT_FALSE(small.prefix("251"));
  EXPECT_FALSE(small.prefix("1.5"));
  EXPECT_FALSE(small.prefix("0"));
  Probe neg(json{{"type", "number"}, {"exclusiveMinimum", -1}, {"exclusiveMaximum", 0}});
  EXPECT_TRUE(neg.complete("-0.5"));
  EXPECT_FALSE(neg.complete("-1"));
  EXPECT_FALSE(neg.complete("0"));
  EXPECT_FALSE(neg.prefix("-2"));
  EXPECT_FALSE(neg.prefix("1"));
  EXPECT_FALSE(neg.prefix("-0.5e"));  // no exponents under a range
  Probe any(json{{"type", "number"}});
  EXPECT_TRUE(any.complete("-12.5E+3"));
  EXPECT_FALSE(any.prefix("1234567890123456"));  // 16 integer digits
}

TEST(JsonMatcher, EnumsConstAndAnyOf) {
  Probe e(json{{"enum", {"red", "green", 1, 12, nullptr, json{{"a", 1}}}}});
  for (const char* ok : {"\"red\"", "\"green\"", "1", "12", "null", "{\"a\":1}"}) EXPECT_TRUE(e.complete(ok)) << ok;
  for (const char* bad : {"\"re\"", "2", "123", "{\"a\": 1}", "true"}) EXPECT_FALSE(e.complete(bad)) << bad;
  Probe c(json{{"const", "x"}});
  EXPECT_TRUE(c.complete("\"x\""));
  EXPECT_FALSE(c.prefix("\"y"));
  Probe alt(json{{"anyOf", {json{{"type", "object"}, {"properties", {{"a", {{"type", "integer"}}}}}, {"required", {"a"}}, {"additionalProperties", false}},
                            json{{"type", "object"}, {"properties", {{"a", {{"type", "string"}}}}}, {"required", {"a"}}, {"additionalProperties", false}}}}});
  EXPECT_TRUE(alt.complete("{\"a\":1}"));
  EXPECT_TRUE(alt.complete("{\"a\":\"s\"}"));
  EXPECT_FALSE(alt.prefix("{\"a\":null"));
}

TEST(JsonMatcher, ArraysAndReferences) {
  Probe a(json{{"type", "array"}, {"items", {{"type", "boolean"}}}, {"minItems", 1}, {"maxItems", 2}});
  EXPECT_FALSE(a.complete("[]"));
  EXPECT_TRUE(a.complete("[true]"));
  EXPECT_TRUE(a.complete("[ true , false ]"));
  EXPECT_FALSE(a.prefix("[true,false,"));
  Probe tree(json{{"$defs", {{"node", {{"type", "object"},
                                        {"properties", {{"v", {{"type", "integer"}}}, {"kids", {{"type", "array"}, {"items", {{"$ref", "#/$defs/node"}}}}}}},
                                        {"required", {"v"}}, {"additionalProperties", false}}}}},
                  {"$ref", "#/$defs/node"}});
  EXPECT_TRUE(tree.complete("{\"v\":1,\"kids\":[{\"v\":2},{\"v\":3,\"kids\":[]}]}"));
  EXPECT_FALSE(tree.prefix("{\"v\":1,\"kids\":[{\"w\""));
}

}  // namespace
}  // namespace lorax::structured
