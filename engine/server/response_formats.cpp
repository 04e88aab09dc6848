#include "server/response_formats.h"

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

std::string LoraxFormat::stream_token(const GeneratedToken& tok) {
  std::string out = stream_flush();
  pending_ = tok;
  return out;
}

std::string LoraxFormat::stream_flush() {
  if (!pending_) return "";
  json event = {{"token", token_json(*pending_)}, {"generated_text", nullptr}, {"details", nullptr}};
  pending_.reset();
  return sse_event(event.dump(-1, ' ', false, kUtf8Replace));
}

std::string LoraxFormat::stream_finish(const FinishInfo& info) {
  if (!pending_) return "";  // nothing was generated (cancelled before the first token)
  json details = {{"finish_reason", finish_reason_name(info.reason)},
                  {"prompt_tokens", prompt_tokens_},
                  {"cached_tokens", info.cached_tokens},
                  {"generated_tokens", info.tokens.size()},
                  {"seed", info.seed ? json(*info.seed) : json(nullptr)}};
  const std::string text = params_.return_full_text ? prompt_ + info.generated_text : info.generated_text;
  // The last event's token carries the held-back text, so that the tokens' texts add up to generated_text.
  if (!pending_->special) pending_->text += held_back_tail(info);
  std::string out =
      sse_event(json{{"token", token_json(*pending_)}, {"generated_text", text}, {"details", details}}.dump(-1, ' ', false, kUtf8Replace));
  pending_.reset();
  return out;
}

json LoraxFormat::body(const FinishInfo& info) {
  json out = generate_response(info, params_, prompt_);
  if (out.contains("details")) {
    out["details"]["prompt_tokens"] = prompt_tokens_;
    out["details"]["cached_tokens"] = info.cached_tokens;
  }
  return as_list_ ? json::array({out}) : out;
}

// ---- OpenAI ----

std::string OpenAIFormat::stream_start() {
  if (chat_) return sse_event(chat_chunk(ids_, {{"role", "assistant"}, {"content", ""}}, nullptr).dump(-1, ' ', false, kUtf8Replace), true);
  if (!echo_.empty()) return sse_event(completion_chunk(ids_, echo_, nullptr).dump(-1, ' ', false, kUtf8Replace), true);
  return "";
}

std::string OpenAIFormat::content_chunk(const std::string& text) const {
  json chunk = chat_ ? chat_chunk(ids_, {{"content", text}}, nullptr) : completion_chunk(ids_, text, nullptr);
  return sse_event(chunk.dump(-1, ' ', false, kUtf8Replace), true);
}

// Whether text an auto tool choice has held so far may still be a tool call.
bool may_be_tool_call(const std::string& held) {
  const size_t at = held.find_first_not_of(" \t\r\n");
  if (at == std::string::npos) return true;
  const std::string_view rest = std::string_view(held).substr(at), open = "<tool_call>";
  return rest[0] == '{' || rest[0] == '[' || open.starts_with(rest.substr(0, open.size())) || rest.starts_with(open);
}

std::string OpenAIFormat::stream_token(const GeneratedToken& tok) {
  if (tok.special || tok.text.empty()) return "";  // specials are not text; partial UTF-8 waits
  if (tools_.active() && holding_) {
    held_ += tok.text;
    if (tools_.constrained() || may_be_tool_call(held_)) return "";
    holding_ = false;  // plain text after all: what was held goes out now
    std::string out = content_chunk(held_);
    held_.clear();
    return out;
  }
  return content_chunk(tok.text);
}

std::optional<std::vector<ToolCall>> OpenAIFormat::tool_calls(const FinishInfo& info) const {
  if (!tools_.active() || !holding_ || info.reason == FinishReason::Length || info.reason == FinishReason::Error)
    return std::nullopt;
  return parse_tool_calls(info.generated_text, tools_);
}

std::string OpenAIFormat::stream_finish(const FinishInfo& info) {
  const char* reason = openai_finish_reason(info.reason);
  std::string out;
  if (auto calls = tool_calls(info)) {
    out += sse_event(chat_chunk(ids_, {{"tool_calls", tool_calls_json(*calls, ids_.id, true)}}, nullptr)
                         .dump(-1, ' ', false, kUtf8Replace), true);
    out += sse_event(chat_chunk(ids_, json::object(), "tool_calls").dump(-1, ' ', false, kUtf8Replace), true);
    if (include_usage_) out += sse_event(usage_chunk(ids_, chat_, usage(info)).dump(-1, ' ', false, kUtf8Replace), true);
    return out + sse_event("[DONE]", true);
  }
  if (!held_.empty()) out += content_chunk(held_);  // held as a possible tool call, but text
  const std::string tail = held_back_tail(info);
  json last = chat_ ? chat_chunk(ids_, tail.empty() ? json::object() : json{{"content", tail}}, reason)
                    : completion_chunk(ids_, tail, reason);
  out += sse_event(last.dump(-1, ' ', false, kUtf8Replace), true);
  if (include_usage_) out += sse_event(usage_chunk(ids_, chat_, usage(info)).dump(-1, ' ', false, kUtf8Replace), true);
  out += sse_event("[DONE]", true);
  return out;
}

json OpenAIFormat::body(const FinishInfo& info) {
  if (auto calls = tool_calls(info)) {
    json out = chat_response(ids_, "", info.reason, usage(info));
    out["choices"][0]["message"] = {{"role", "assistant"}, {"content", nullptr},
                                    {"tool_calls", tool_calls_json(*calls, ids_.id, false)}};
    out["choices"][0]["finish_reason"] = "tool_calls";
    return out;
  }
  if (chat_) return chat_response(ids_, info.generated_text, info.reason, usage(info));
  return completion_response(ids_, echo_ + info.generated_text, info.reason, usage(info));
}

}  // namespace lorax::server
