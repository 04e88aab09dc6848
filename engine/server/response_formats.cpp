#include "server/response_formats.h"

#include <algorithm>
#include <utility>

#include "server/openai_logprobs.h"

namespace lorax::server {

using json = nlohmann::json;

std::string sse_event(const std::string& payload, bool space_after_colon) {
  return (space_after_colon ? "data: " : "data:") + payload + "\n\n";
}

// Text the detokenizer held back until the end (e.g. a trailing partial character, or
// byte-fallback pieces): generated_text holds it, no token event did.
std::string held_back_tail(const FinishInfo& info) {
  size_t streamed = 0;
  for (const GeneratedToken& t : info.tokens)
    if (!t.special) streamed += t.text.size();
  return info.generated_text.size() > streamed ? info.generated_text.substr(streamed) : "";
}

// ---- LoRAX ----

json LoraxFormat::event(const GeneratedToken& tok) const {
  json e = {{"token", token_json(tok, params_.return_k_alternatives)}, {"generated_text", nullptr}, {"details", nullptr}};
  if (params_.top_n_tokens > 0) e["top_tokens"] = top_tokens_json(tok, params_.top_n_tokens);
  return e;
}

std::string LoraxFormat::stream_token(size_t choice, const GeneratedToken& tok) {
  std::string out = stream_flush(choice);
  pending_ = tok;
  return out;
}

std::string LoraxFormat::stream_flush(size_t) {
  if (!pending_) return "";
  json e = event(*pending_);
  pending_.reset();
  return sse_event(e.dump(-1, ' ', false, kUtf8Replace));
}

std::string LoraxFormat::stream_finish(size_t, const FinishInfo& info) {
  if (!pending_) return "";  // nothing was generated (cancelled before the first token)
  json details = {{"finish_reason", finish_reason_name(info.reason)},
                  {"prompt_tokens", prompt_tokens_},
                  {"cached_tokens", info.cached_tokens},
                  {"generated_tokens", info.tokens.size()},
                  {"seed", info.seed ? json(*info.seed) : json(nullptr)}};
  // The last event's token carries the held-back text, so that the tokens' texts add up to generated_text.
  if (!pending_->special) pending_->text += held_back_tail(info);
  json e = event(*pending_);
  e["generated_text"] = params_.return_full_text ? prompt_ + info.generated_text : info.generated_text;
  e["details"] = details;
  pending_.reset();
  return sse_event(e.dump(-1, ' ', false, kUtf8Replace));
}

json LoraxFormat::body(const std::vector<FinishInfo>& infos) {
  json out = generate_response(infos, params_, prompt_);
  if (out.contains("details")) {
    out["details"]["prompt_tokens"] = prompt_tokens_;
    out["details"]["cached_tokens"] = infos[best_sequence(infos)].cached_tokens;
  }
  return as_list_ ? json::array({out}) : out;
}

// ---- OpenAI ----

TokenUsage OpenAIFormat::usage(const std::vector<FinishInfo>& infos) const {
  TokenUsage u{o_.prompt_tokens, 0, infos.empty() ? 0 : static_cast<size_t>(infos[0].cached_tokens)};
  for (const FinishInfo& info : infos) u.completion += info.tokens.size();  // every sequence generated counts
  return u;
}

std::string OpenAIFormat::stream_start(size_t i) {
  if (o_.chat)
    return sse_event(chat_chunk(ids_, i, {{"role", "assistant"}, {"content", ""}}, nullptr).dump(-1, ' ', false, kUtf8Replace), true);
  if (!o_.echo.empty()) {
    choice(i).chars_sent = utf8_chars(o_.echo);
    return sse_event(completion_chunk(ids_, i, o_.echo, nullptr).dump(-1, ' ', false, kUtf8Replace), true);
  }
  return "";
}

json OpenAIFormat::take_logprobs(size_t i) {
  Choice& c = choice(i);
  if (!o_.logprobs) return nullptr;
  json out;
  if (o_.chat) {
    out = chat_logprobs(c.unsent);
  } else {
    CompletionLogprobs lp(c.chars_sent);
    for (const GeneratedToken& t : c.unsent) lp.add(t);
    out = lp.take();
  }
  c.unsent.clear();
  return out;
}

std::string OpenAIFormat::content_chunk(size_t i, const std::string& text) {
  const json logprobs = take_logprobs(i);
  json chunk = o_.chat ? chat_chunk(ids_, i, {{"content", text}}, nullptr, logprobs)
                       : completion_chunk(ids_, i, text, nullptr, logprobs);
  choice(i).chars_sent += utf8_chars(text);
  return sse_event(chunk.dump(-1, ' ', false, kUtf8Replace), true);
}

// Whether text an auto tool choice has held so far may still be a tool call.
bool may_be_tool_call(const std::string& held) {
  const size_t at = held.find_first_not_of(" \t\r\n");
  if (at == std::string::npos) return true;
  const std::string_view rest = std::string_view(held).substr(at), open = "<tool_call>";
  return rest[0] == '{' || rest[0] == '[' || open.starts_with(rest.substr(0, open.size())) || rest.starts_with(open);
}

std::string OpenAIFormat::stream_token(size_t i, const GeneratedToken& tok) {
  Choice& c = choice(i);
  if (o_.logprobs && !tok.special) c.unsent.push_back(tok);
  if (tok.special || tok.text.empty()) return "";  // specials are not text; partial UTF-8 waits
  if (o_.tools.active() && c.holding) {
    c.held += tok.text;
    if (o_.tools.constrained() || may_be_tool_call(c.held)) return "";
    c.holding = false;  // plain text after all: what was held goes out now
    std::string held = std::move(c.held);
    c.held.clear();
    return text_chunk(i, held);
  }
  return text_chunk(i, tok.text);
}

// Where the text must end: before the earliest stop sequence in it (OpenAI's
// answers never contain one), or npos.
size_t OpenAIFormat::stop_at(const std::string& text) const {
  size_t at = std::string::npos;
  for (const std::string& stop : o_.stop)
    if (!stop.empty()) at = std::min(at, text.find(stop));
  return at;
}

// Text goes out once no stop sequence can start in it: the last (longest stop - 1)
// bytes wait for the next token (or the finish, which cuts at the stop).
std::string OpenAIFormat::text_chunk(size_t i, const std::string& text) {
  size_t longest = 0;
  for (const std::string& stop : o_.stop) longest = std::max(longest, stop.size());
  if (longest == 0) return content_chunk(i, text);
  Choice& c = choice(i);
  c.stop_window += text;
  if (stop_at(c.stop_window) != std::string::npos) return "";  // the request ends here: the finish cuts it
  size_t cut = c.stop_window.size() - std::min(c.stop_window.size(), longest - 1);
  while (cut > 0 && (static_cast<unsigned char>(c.stop_window[cut]) & 0xC0) == 0x80) --cut;  // whole characters
  if (cut == 0) return "";
  std::string out = c.stop_window.substr(0, cut);
  c.stop_window.erase(0, cut);
  return content_chunk(i, out);
}

std::optional<std::vector<ToolCall>> OpenAIFormat::tool_calls(const Choice& c, const FinishInfo& info) const {
  if (!o_.tools.active() || !c.holding || info.reason == FinishReason::Length || info.reason == FinishReason::Error)
    return std::nullopt;
  return parse_tool_calls(info.generated_text, o_.tools);
}

std::string OpenAIFormat::stream_finish(size_t i, const FinishInfo& info) {
  Choice& c = choice(i);
  const char* reason = openai_finish_reason(info.reason);
  std::string out;
  if (auto calls = tool_calls(c, info)) {
    const json logprobs = take_logprobs(i);
    out += sse_event(chat_chunk(ids_, i, {{"tool_calls", tool_calls_json(*calls, ids_.id, true)}}, nullptr, logprobs)
                         .dump(-1, ' ', false, kUtf8Replace), true);
    return out + sse_event(chat_chunk(ids_, i, json::object(), "tool_calls").dump(-1, ' ', false, kUtf8Replace), true);
  }
  if (!c.held.empty()) out += text_chunk(i, std::exchange(c.held, ""));  // held as a possible tool call, but text
  std::string tail = std::exchange(c.stop_window, "") + held_back_tail(info);
  if (info.reason == FinishReason::StopSequence && stop_at(tail) != std::string::npos) tail.resize(stop_at(tail));
  const json logprobs = take_logprobs(i);
  json last = o_.chat ? chat_chunk(ids_, i, tail.empty() ? json::object() : json{{"content", tail}}, reason, logprobs)
                      : completion_chunk(ids_, i, tail, reason, logprobs);
  return out + sse_event(last.dump(-1, ' ', false, kUtf8Replace), true);
}

std::string OpenAIFormat::stream_end(const std::vector<FinishInfo>& infos) {
  std::string out;
  if (o_.include_usage) out += sse_event(usage_chunk(ids_, o_.chat, usage(infos)).dump(-1, ' ', false, kUtf8Replace), true);
  return out + sse_event("[DONE]", true);
}

json OpenAIFormat::body(const std::vector<FinishInfo>& infos) {
  // The n likeliest sequences (all of them unless best_of > n), best first.
  std::vector<size_t> order(infos.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  if (o_.n < infos.size()) {
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return mean_logprob(infos[a]) > mean_logprob(infos[b]); });
    order.resize(o_.n);
  }
  json choices = json::array();
  for (size_t index = 0; index < order.size(); ++index) {
    const FinishInfo& info = infos[order[index]];
    const Choice& c = choice(order[index]);
    json logprobs = nullptr;
    if (o_.logprobs && o_.chat) {
      logprobs = chat_logprobs(info.tokens);
    } else if (o_.logprobs) {
      CompletionLogprobs lp(utf8_chars(o_.echo));
      for (const GeneratedToken& t : info.tokens) lp.add(t);
      logprobs = lp.take();
    }
    if (auto calls = tool_calls(c, info)) {
      json message = {{"role", "assistant"}, {"content", nullptr},
                      {"tool_calls", tool_calls_json(*calls, ids_.id, false)}};
      choices.push_back(chat_choice(index, message, "tool_calls", logprobs));
    } else {
      std::string text = info.generated_text;
      if (info.reason == FinishReason::StopSequence && stop_at(text) != std::string::npos) text.resize(stop_at(text));
      if (o_.chat)
        choices.push_back(chat_choice(index, {{"role", "assistant"}, {"content", text}},
                                      openai_finish_reason(info.reason), logprobs));
      else
        choices.push_back(completion_choice(index, o_.echo + text, openai_finish_reason(info.reason), logprobs));
    }
  }
  return o_.chat ? chat_response(ids_, choices, usage(infos)) : completion_response(ids_, choices, usage(infos));
}

}  // namespace lorax::server
