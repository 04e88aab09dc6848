// Fuzzes the Jinja chat-template engine: the input is a template source, parsed
// by ChatTemplate and rendered with a small fixed conversation (system, user,
// assistant with a tool call, tool result) twice: without tools and
// add_generation_prompt, then with a tool list. TemplateError is the expected
// answer (syntax errors, type errors, raise_exception, the interpreter's
// iteration and recursion limits); any other exception escaping or a sanitizer
// report is a finding, and scripts/fuzz's -timeout/-rss_limit_mb catch a
// render that runs or grows without bound.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "fuzz_util.h"
#include "tokenizer/chat_template.h"

namespace {

using ojson = nlohmann::ordered_json;

const ojson& context(bool tools) {
  static const ojson plain = ojson::parse(R"({
    "messages": [
      {"role": "system", "content": "You are terse."},
      {"role": "user", "content": "Weather in Paris? Antworte kurz, ça va 東京"},
      {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function":
        {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]},
      {"role": "tool", "name": "get_weather", "content": "{\"temp\": 21.5, \"sky\": null}"},
      {"role": "assistant", "content": "21.5 degrees."},
      {"role": "user", "content": "Thanks! And tomorrow?"}
    ],
    "tools": null, "documents": null, "add_generation_prompt": true,
    "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": null
  })");
  static const ojson with_tools = [] {
    ojson c = plain;
    c["tools"] = ojson::parse(R"([{"type": "function", "function": {"name": "get_weather",
      "description": "Forecast", "parameters": {"type": "object", "properties":
      {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}}, "required": ["city"]}}}])");
    c["add_generation_prompt"] = false;
    return c;
  }();
  return tools ? with_tools : plain;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string source(reinterpret_cast<const char*>(data), size);
  try {
    const lorax::ChatTemplate tmpl(std::move(source));
    for (bool tools : {false, true}) {
      try {
        (void)tmpl.render(context(tools));
      } catch (const lorax::TemplateError&) {
      }
    }
  } catch (const lorax::TemplateError&) {
  } catch (...) {
    lorax_fuzz::unexpected("ChatTemplate");
  }
  return 0;
}
