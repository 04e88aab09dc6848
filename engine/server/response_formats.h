// How a finished request or its token stream is written for each API flavour:
// LoRAX (/generate, /generate_stream, POST / with `stream`) and OpenAI
// (/v1/completions, /v1/chat/completions). Produces body JSON and SSE event text;
// knows nothing of HTTP.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/api/generate_api.h"
#include "server/openai_api.h"
#include "server/openai_tools.h"

namespace lorax::server {

// Generated text may end in a partial UTF-8 sequence; JSON output replaces it instead of throwing.
inline constexpr auto kUtf8Replace = nlohmann::json::error_handler_t::replace;

// One request's response over its choices (OpenAI `n`/`best_of`, LoRAX `best_of`):
// each choice is one engine request, numbered 0..choices-1; the stream and the
// body end once every choice has finished.
class ResponseFormat {
 public:
  virtual ~ResponseFormat() = default;
  // SSE text (zero or more complete events) for a choice's start, each of its tokens, and its finish.
  virtual std::string stream_start(size_t choice) { (void)choice; return ""; }
  virtual std::string stream_token(size_t choice, const GeneratedToken& tok) = 0;
  // After an engine step in which the choice did not finish: whatever was held back.
  virtual std::string stream_flush(size_t choice) { (void)choice; return ""; }
  virtual std::string stream_finish(size_t choice, const FinishInfo& info) = 0;
  // After every choice's finish: the stream's last events.
  virtual std::string stream_end(const std::vector<FinishInfo>& infos) { (void)infos; return ""; }
  // The whole response body of a non-streamed request, from every choice's finish.
  virtual nlohmann::json body(const std::vector<FinishInfo>& infos) = 0;
};

// One SSE event: "data:" + payload + blank line (the space after the colon is optional in SSE;
// LoRAX writes none, OpenAI one).
std::string sse_event(const std::string& payload, bool space_after_colon = false);

// LoRAX shapes. The stream (one choice: best_of > 1 is not streamed) holds each
// token back until the end of its engine step, so the last token's event can
// carry generated_text and details.
class LoraxFormat : public ResponseFormat {
 public:
  LoraxFormat(GenerateParameters params, std::string prompt, size_t prompt_tokens, bool body_as_list)
      : params_(std::move(params)), prompt_(std::move(prompt)), prompt_tokens_(prompt_tokens), as_list_(body_as_list) {}
  std::string stream_token(size_t choice, const GeneratedToken& tok) override;
  std::string stream_flush(size_t choice) override;
  std::string stream_finish(size_t choice, const FinishInfo& info) override;
  nlohmann::json body(const std::vector<FinishInfo>& infos) override;

 private:
  nlohmann::json event(const GeneratedToken& tok) const;
  GenerateParameters params_;
  std::string prompt_;
  size_t prompt_tokens_;
  bool as_list_;  // POST / answers a list of one response
  std::optional<GeneratedToken> pending_;
};

struct OpenAIOptions {
  bool chat = false;
  size_t prompt_tokens = 0;
  bool include_usage = false;
  std::string echo;  // completions with echo: the prompt, sent first
  size_t n = 1;      // choices returned: the n likeliest of the choices generated (best_of)
  bool logprobs = false;
  std::vector<std::string> stop;  // the request's stop sequences: cut from the answer, as OpenAI does
  ToolSpec tools;
};

class OpenAIFormat : public ResponseFormat {
 public:
  OpenAIFormat(OpenAIIds ids, OpenAIOptions options, size_t choices)
      : ids_(std::move(ids)), o_(std::move(options)), state_(choices) {}
  std::string stream_start(size_t choice) override;
  std::string stream_token(size_t choice, const GeneratedToken& tok) override;
  std::string stream_finish(size_t choice, const FinishInfo& info) override;
  std::string stream_end(const std::vector<FinishInfo>& infos) override;
  nlohmann::json body(const std::vector<FinishInfo>& infos) override;

 private:
  // Function calling: text that may still turn out to be a tool call is held
  // back (all of it when the call is forced) and decided at the end; log-probs
  // wait for the text they belong to.
  struct Choice {
    std::string held;
    bool holding = true;
    std::vector<GeneratedToken> unsent;  // tokens whose text (and log-probs) no chunk carried yet
    size_t chars_sent = 0;               // completions' text_offset
    std::string stop_window;             // text that may still begin a stop sequence
  };
  TokenUsage usage(const std::vector<FinishInfo>& infos) const;
  std::optional<std::vector<ToolCall>> tool_calls(const Choice& c, const FinishInfo& info) const;
  std::string content_chunk(size_t index, const std::string& text);
  std::string text_chunk(size_t index, const std::string& text);  // content_chunk once no stop can begin in it
  size_t stop_at(const std::string& text) const;
  nlohmann::json take_logprobs(size_t index);
  Choice& choice(size_t i) { return state_.at(i); }
  const Choice& choice(size_t i) const { return state_.at(i); }
  OpenAIIds ids_;
  OpenAIOptions o_;
  std::vector<Choice> state_;  // one per choice
};

}  // namespace lorax::server
