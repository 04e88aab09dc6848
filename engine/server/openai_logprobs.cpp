#include "server/openai_logprobs.h"

#include "tokenizer/unicode.h"

namespace lorax::server {

using json = nlohmann::json;

namespace {

// The token's raw bytes as OpenAI lists them (its `token` string may not be
// valid UTF-8 on its own: a byte-level piece of a longer character).
json byte_list(const std::string& piece) {
  json out = json::array();
  for (unsigned char c : piece) out.push_back(static_cast<int>(c));
  return out;
}

}  // namespace

size_t utf8_chars(const std::string& text) {
  size_t n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80;
  return n;
}

json chat_logprob_entry(const GeneratedToken& tok) {
  json top = json::array();
  for (const AlternativeToken& alt : tok.top_tokens)
    top.push_back({{"token", tok::utf8_lossy(alt.text)}, {"logprob", alt.logprob}, {"bytes", byte_list(alt.text)}});
  return {{"token", tok::utf8_lossy(tok.piece)}, {"logprob", tok.logprob}, {"bytes", byte_list(tok.piece)},
          {"top_logprobs", top}};
}

json chat_logprobs(const std::vector<GeneratedToken>& tokens) {
  json content = json::array();
  for (const GeneratedToken& t : tokens)
    if (!t.special) content.push_back(chat_logprob_entry(t));
  return {{"content", content}, {"refusal", nullptr}};
}

void CompletionLogprobs::add(const GeneratedToken& tok) {
  if (tok.special) return;
  tokens_.push_back(tok::utf8_lossy(tok.piece));
  logprobs_.push_back(tok.logprob);
  // Keyed by text (a partial UTF-8 piece reads U+FFFD, as in `tokens`): of
  // alternatives with equal text the likelier one stays.
  json top = json::object();
  for (const AlternativeToken& alt : tok.top_tokens)
    if (const std::string key = tok::utf8_lossy(alt.text); !top.contains(key)) top[key] = alt.logprob;
  top_.push_back(top);
  offsets_.push_back(offset_);
  offset_ += utf8_chars(tok.text);
}

json CompletionLogprobs::take() {
  json out = {{"tokens", tokens_}, {"token_logprobs", logprobs_}, {"top_logprobs", top_}, {"text_offset", offsets_}};
  tokens_ = json::array(), logprobs_ = json::array(), top_ = json::array(), offsets_ = json::array();
  return out;
}

}  // namespace lorax::server
