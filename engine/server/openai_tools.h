// OpenAI function calling on chat completions: `tools` and `tool_choice`.
//   none      the tools are rendered by the chat template, the answer is text;
//   auto      free generation; an answer that is a tool call (a JSON object
//             {"name", "arguments"|"parameters"}, a list of them, or Hermes/Qwen
//             <tool_call>...</tool_call> blocks) naming a given tool becomes tool_calls;
//   required  constrained decoding (engine/structured) to a non-empty list of
//             {"name": <a tool>, "arguments": <its parameters>};
//   named     constrained to one {"name": <that tool>, "arguments": ...}.
// Free of any HTTP library.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lorax::server {

enum class ToolChoice { None, Auto, Required, Named };

struct ToolSpec {
  struct Function {
    std::string name;
    nlohmann::json parameters;  // a JSON Schema (an empty object when absent)
  };
  std::vector<Function> functions;  // empty: no tools in the request
  ToolChoice choice = ToolChoice::None;
  std::string named;  // ToolChoice::Named
  bool parallel = true;  // parallel_tool_calls: false allows one call per answer
  bool active() const { return !functions.empty() && choice != ToolChoice::None; }
  bool constrained() const { return choice == ToolChoice::Required || choice == ToolChoice::Named; }
};

struct ToolCall {
  std::string name;
  std::string arguments;  // JSON text, as OpenAI sends it
};

// Throws ValidationError for malformed tools, an unknown choice or a named tool not given.
ToolSpec parse_tools(const nlohmann::ordered_json& tools, const nlohmann::ordered_json& tool_choice,
                     const nlohmann::ordered_json& parallel_tool_calls = nullptr);
// The schema of a constrained choice's output (Required or Named).
nlohmann::json tool_call_schema(const ToolSpec& spec);
// The calls in a generated text; none when it is not a call of a given tool.
std::optional<std::vector<ToolCall>> parse_tool_calls(const std::string& text, const ToolSpec& spec);
// OpenAI's message.tool_calls (or a streamed delta's, with "index").
nlohmann::json tool_calls_json(const std::vector<ToolCall>& calls, const std::string& id_prefix, bool delta);

}  // namespace lorax::server
