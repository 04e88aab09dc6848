// How a finished request or its token stream is written for each API flavour:
// LoRAX (/generate, /generate_stream, POST / with `stream`) and OpenAI
// (/v1/completions, /v1/chat/completions). Produces body JSON and SSE event text;
// knows nothing of HTTP.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "server/api/generate_api.h"
#include "server/openai_api.h"
#include "server/openai_tools.h"

namespace lorax::server {

// Generated text may end in a partial UTF-8 sequence; JSON output replaces it instead of throwing.
inline constexpr auto kUtf8Replace = nlohmann::json::error_handler_t::replace;

class ResponseFormat {
 public:
  virtual ~ResponseFormat() = default;
  // SSE text (zero or more complete events) for the stream's start, each token, and the finish.
  virtual std::string stream_start() { return ""; }
  virtual std::string stream_token(const GeneratedToken& tok) = 0;
  // After an engine step in which the request did not finish: whatever was held back.
  virtual std::string stream_flush() { return ""; }
  virtual std::string stream_finish(const FinishInfo& info) = 0;
  // The whole response body of a non-streamed request.
  virtual nlohmann::json body(const FinishInfo& info) = 0;
};

// One SSE event: "data:" + payload + blank line (the space after the colon is optional in SSE;
// LoRAX writes none, OpenAI one).
std::string sse_event(const std::string& payload, bool space_after_colon = false);

// LoRAX shapes. The stream holds each token back until the end of its engine step,
// so the last token's event can carry generated_text and details.
class LoraxFormat : public ResponseFormat {
 public:
  LoraxFormat(GenerateParameters params, std::string prompt, size_t prompt_tokens, bool body_as_list)
      : params_(std::move(params)), prompt_(std::move(prompt)), prompt_tokens_(prompt_tokens), as_list_(body_as_list) {}
  std::string stream_token(const GeneratedToken& tok) override;
  std::string stream_flush() override;
  std::string stream_finish(const FinishInfo& info) override;
  nlohmann::json body(const FinishInfo& info) override;

 private:
  GenerateParameters params_;
  std::string prompt_;
  size_t prompt_tokens_;
  bool as_list_;  // POST / answers a list of one response
  std::optional<GeneratedToken> pending_;
};

class OpenAIFormat : public ResponseFormat {
 public:
  OpenAIFormat(OpenAIIds ids, bool chat, size_t prompt_tokens, bool include_usage, std::string echo_prefix,
               ToolSpec tools = {})
      : ids_(std::move(ids)), chat_(chat), prompt_tokens_(prompt_tokens), include_usage_(include_usage),
        echo_(std::move(echo_prefix)), tools_(std::move(tools)) {}
  std::string stream_start() override;
  std::string stream_token(const GeneratedToken& tok) override;
  std::string stream_finish(const FinishInfo& info) override;
  nlohmann::json body(const FinishInfo& info) override;

 private:
  TokenUsage usage(const FinishInfo& info) const {
    return {prompt_tokens_, info.tokens.size(), static_cast<size_t>(info.cached_tokens)};
  }
  OpenAIIds ids_;
  bool chat_;
  size_t prompt_tokens_;
  bool include_usage_;
  std::string echo_;  // completions with echo: the prompt, sent first
  // Function calling: text that may still turn out to be a tool call is held
  // back (all of it when the call is forced) and decided at the end.
  ToolSpec tools_;
  std::string held_;
  bool holding_ = true;
  std::optional<std::vector<ToolCall>> tool_calls(const FinishInfo& info) const;
  std::string content_chunk(const std::string& text) const;
};

}  // namespace lorax::server
