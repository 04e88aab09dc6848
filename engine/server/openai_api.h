// OpenAI-compatible request parsing and response shapes (/v1/completions,
// /v1/chat/completions), mapped onto the LoRAX /generate parameters so both
// APIs share one validation path. Free of any HTTP library.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/api/generate_api.h"
#include "server/openai_tools.h"

namespace lorax::server {

// OpenAI's bound on completions' `logprobs` (chat's top_logprobs goes to kMaxTopTokens).
inline constexpr int kMaxCompletionLogprobs = 5;

struct OpenAIRequest {
  std::string model;           // as the client named it ("" when absent)
  int n = 1;                   // choices returned
  int best_of = 1;             // completions: sequences generated, the n likeliest returned (>= n)
  bool logprobs = false;       // chat `logprobs`, or completions `logprobs` set (then top_logprobs is its value)
  int top_logprobs = 0;
  GenerateParameters params;   // adapter_id is left for the server to resolve from `model`
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool echo = false;           // completions: prepend the prompt
  std::string prompt;          // completions
  nlohmann::ordered_json messages;  // chat, key order kept for the template's tojson
  nlohmann::ordered_json tools;     // chat, null when absent (rendered by the template)
  ToolSpec tool_spec;               // chat: the tools and tool_choice, parsed
};

// Throw ValidationError naming the offending field.
OpenAIRequest parse_completion_request(const nlohmann::ordered_json& body);
OpenAIRequest parse_chat_request(const nlohmann::ordered_json& body);

// "stop" for eos/stop sequence, "length" for the token limit.
const char* openai_finish_reason(FinishReason r);

struct OpenAIIds {
  std::string id;     // cmpl-... / chatcmpl-...
  int64_t created = 0;
  std::string model;
};

struct TokenUsage {
  size_t prompt = 0, completion = 0;
  size_t cached = 0;  // prompt tokens served from the prefix cache: usage.prompt_tokens_details.cached_tokens
};

nlohmann::json usage_json(const TokenUsage& usage);
// One entry of `choices`; `logprobs` null when not asked for.
nlohmann::json completion_choice(size_t index, const std::string& text, const char* finish,
                                 const nlohmann::json& logprobs);
nlohmann::json chat_choice(size_t index, const nlohmann::json& message, const char* finish,
                           const nlohmann::json& logprobs);
// The whole response around its choices.
nlohmann::json completion_response(const OpenAIIds& ids, const nlohmann::json& choices, const TokenUsage& usage);
nlohmann::json chat_response(const OpenAIIds& ids, const nlohmann::json& choices, const TokenUsage& usage);
// One streamed chunk of choice `index`; `finish` null for content chunks.
nlohmann::json completion_chunk(const OpenAIIds& ids, size_t index, const std::string& text, const char* finish,
                                const nlohmann::json& logprobs = nullptr);
nlohmann::json chat_chunk(const OpenAIIds& ids, size_t index, const nlohmann::json& delta, const char* finish,
                          const nlohmann::json& logprobs = nullptr);
// The final chunk of stream_options.include_usage: no choices, only usage.
nlohmann::json usage_chunk(const OpenAIIds& ids, bool chat, const TokenUsage& usage);

}  // namespace lorax::server
