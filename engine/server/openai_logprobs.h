// OpenAI's log-probability shapes, built from the engine's generated tokens
// (GeneratedToken::piece and top_tokens, asked for with token_pieces/top_n_tokens):
// chat's `logprobs.content` entries and the legacy completions object
// {tokens, token_logprobs, top_logprobs, text_offset}. Special tokens are not
// text and are left out, as they are of the text itself. A token's `token`
// string is its bytes read as UTF-8 (a byte of a longer character: U+FFFD);
// `bytes` lists the real ones.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "scheduler/request.h"

namespace lorax::server {

// {"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]} for chat.
nlohmann::json chat_logprob_entry(const GeneratedToken& tok);
// {"content": [entries of `tokens`' non-special tokens], "refusal": null}
nlohmann::json chat_logprobs(const std::vector<GeneratedToken>& tokens);

// The completions object for a run of tokens; `text_offset` counts characters
// from `offset` (the characters before the first token: an echoed prompt,
// earlier streamed text).
class CompletionLogprobs {
 public:
  explicit CompletionLogprobs(size_t offset = 0) : offset_(offset) {}
  void add(const GeneratedToken& tok);
  bool empty() const { return tokens_.empty(); }
  // The object for what was added since the last take(), and a fresh start.
  nlohmann::json take();

 private:
  size_t offset_;
  nlohmann::json tokens_ = nlohmann::json::array(), logprobs_ = nlohmann::json::array(),
                 top_ = nlohmann::json::array(), offsets_ = nlohmann::json::array();
};

// Characters (code points) of UTF-8 text; a partial sequence counts as one.
size_t utf8_chars(const std::string& text);

}  // namespace lorax::server
