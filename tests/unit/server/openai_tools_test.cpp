// Function calling: tool specs, the schema a forced call is decoded with (checked
// by the structured matcher itself), and reading calls back from generated text in
// the formats models write (OpenAI-style JSON, Llama 3.1 "parameters", Hermes/Qwen
// <tool_call> blocks).
#include <gtest/gtest.h>

#include "server/api/generate_api.h"
#include "server/openai_tools.h"
#include "structured/json_matcher.h"

namespace lorax::server {
namespace {

using ojson = nlohmann::ordered_json;

const ojson kTools = ojson::parse(R"([
  {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
     "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false}}},
  {"type": "function", "function": {"name": "now"}}])");

TEST(OpenAITools, ChoicesAndErrors) {
  EXPECT_EQ(parse_tools(kTools, nullptr).choice, ToolChoice::Auto);
  EXPECT_EQ(parse_tools(nullptr, nullptr).choice, ToolChoice::None);
  EXPECT_EQ(parse_tools(kTools, "none").choice, ToolChoice::None);
  EXPECT_EQ(parse_tools(kTools, "required").choice, ToolChoice::Required);
  ToolSpec named = parse_tools(kTools, ojson::parse(R"({"type": "function", "function": {"name": "now"}})"));
  EXPECT_EQ(named.choice, ToolChoice::Named);
  EXPECT_EQ(named.named, "now");
  EXPECT_THROW(parse_tools(kTools, ojson::parse(R"({"type": "function", "function": {"name": "x"}})")), ValidationError);
  EXPECT_THROW(parse_tools(kTools, "sometimes"), ValidationError);
  EXPECT_THROW(parse_tools(nullptr, "required"), ValidationError);
  EXPECT_THROW(parse_tools(ojson::parse(R"([{"type": "function", "function": {}}])"), nullptr), ValidationError);
  EXPECT_THROW(parse_tools(ojson::parse(R"([{"type": "retrieval"}])"), nullptr), ValidationError);
  EXPECT_THROW(parse_tools(ojson::array({kTools[1], kTools[1]}), nullptr), ValidationError);
  EXPECT_THROW(parse_tools(kTools, nullptr, "no"), ValidationError);
  EXPECT_THROW(parse_tools(ojson::parse(R"([{"type": "function", "function": {"name": "f", "strict": 1}}])"), nullptr),
               ValidationError);
  EXPECT_THROW(parse_tools(ojson::parse(R"([{"type": "function", "function": {"name": "f", "parms": {}}}])"), nullptr),
               ValidationError);
}

bool accepts(const nlohmann::json& schema, const std::string& text) {
  auto s = structured::Schema::compile(schema);
  structured::MatchState st = structured::initial_state(*s);
  return structured::advance(*s, st, text) && st.can_finish(*s);
}

TEST(OpenAITools, ForcedCallsAreDecodedWithTheirParameters) {
  const auto required = tool_call_schema(parse_tools(kTools, "required"));
  EXPECT_TRUE(accepts(required, R"([{"name":"get_weather","arguments":{"city":"Oslo"}},{"name":"now","arguments":{}}])"));
  EXPECT_FALSE(accepts(required, R"([])"));
  EXPECT_FALSE(accepts(required, R"([{"name":"get_weather","arguments":{}}])"));  // city is required
  EXPECT_FALSE(accepts(required, R"([{"name":"other","arguments":{}}])"));
  const auto single = tool_call_schema(parse_tools(kTools, "required", false));  // parallel_tool_calls: false
  EXPECT_TRUE(accepts(single, R"([{"name":"now","arguments":{}}])"));
  EXPECT_FALSE(accepts(single, R"([{"name":"now","arguments":{}},{"name":"now","arguments":{}}])"));
  const auto named = tool_call_schema(parse_tools(kTools, ojson::parse(R"({"type":"function","function":{"name":"get_weather"}})")));
  EXPECT_TRUE(accepts(named, R"({"name":"get_weather","arguments":{"city":"x"}})"));
  EXPECT_FALSE(accepts(named, R"({"name":"now","arguments":{}})"));
}

TEST(OpenAITools, CallsAreReadBackFromTheFormatsModelsWrite) {
  const ToolSpec spec = parse_tools(kTools, nullptr);
  auto c = parse_tool_calls(R"( {"name": "get_weather", "arguments": {"city": "Oslo"}} )", spec);
  ASSERT_TRUE(c);
  ASSERT_EQ(c->size(), 1u);
  EXPECT_EQ((*c)[0].name, "get_weather");
  EXPECT_EQ(nlohmann::json::parse((*c)[0].arguments), nlohmann::json::parse(R"({"city": "Oslo"})"));
  c = parse_tool_calls(R"({"name": "now", "parameters": {}})", spec);  // Llama 3.1
  ASSERT_TRUE(c);
  EXPECT_EQ((*c)[0].arguments, "{}");
  c = parse_tool_calls("<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>\n<tool_call>{\"name\": "
                       "\"get_weather\", \"arguments\": {\"city\": \"a\"}}</tool_call>", spec);  // Hermes / Qwen
  ASSERT_TRUE(c);
  EXPECT_EQ(c->size(), 2u);
  EXPECT_FALSE(parse_tool_calls("It is sunny.", spec));
  EXPECT_FALSE(parse_tool_calls(R"([{"name":"now","arguments":{}},{"name":"now","arguments":{}}])",
                                parse_tools(kTools, nullptr, false)));
  EXPECT_FALSE(parse_tool_calls(R"({"name": "unknown", "arguments": {}})", spec));
  EXPECT_FALSE(parse_tool_calls(R"({"name": "now", "arguments": {}, "extra": 1})", spec));
  EXPECT_FALSE(parse_tool_calls("<tool_call>{\"name\": \"now\"", spec));
  const auto j = tool_calls_json(*parse_tool_calls(R"([{"name":"now","arguments":{}}])", spec), "chatcmpl-1", true);
  EXPECT_EQ(j[0]["function"]["name"], "now");
  EXPECT_EQ(j[0]["index"], 0);
}

}  // namespace
}  // namespace lorax::server
