#include "server/openai_api.h"

#include <cmath>
#include <set>
#include <algorithm>

#include "server/api/json_fields.h"

namespace lorax::server {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

bool present(const ojson& b, const char* k) { return b.contains(k) && !b[k].is_null(); }

double number(const ojson& b, const char* k) {
  if (!b[k].is_number()) throw ValidationError(std::string("`") + k + "` must be a number");
  return b[k].get<double>();
}

int integer(const ojson& b, const char* k) { return checked_integer<int>(b, k); }

bool boolean(const ojson& b, const char* k) {
  if (!b[k].is_boolean()) throw ValidationError(std::string("`") + k + "` must be a boolean");
  return b[k].get<bool>();
}

// OpenAI's response_format: text, json_object, or json_schema {name, schema, strict, description}.
void response_format(const ojson& rf, GenerateParameters& p) {
  if (!rf.is_object() || !rf.contains("type") || !rf["type"].is_string())
    throw ValidationError("`response_format` must be an object with a string `type`");
  const std::string type = rf["type"].get<std::string>();
  for (auto& [key, _] : rf.items())
    if (key != "type" && !(type == "json_schema" && key == "json_schema"))
      throw ValidationError("unknown `response_format` field `" + key + "`");
  if (type == "text") return;
  if (type == "json_object") {
    p.json_output = true;
    return;
  }
  if (type != "json_schema")
    throw ValidationError("`response_format.type` must be \"text\", \"json_object\" or \"json_schema\"");
  if (!present(rf, "json_schema") || !rf["json_schema"].is_object())
    throw ValidationError("`response_format.json_schema` must be an object");
  const ojson& js = rf["json_schema"];
  for (auto& [key, _] : js.items())
    if (key != "name" && key != "schema" && key != "strict" && key != "description")
      throw ValidationError("unknown `response_format.json_schema` field `" + key + "`");
  if (!present(js, "name") || !js["name"].is_string()) throw ValidationError("`response_format.json_schema.name` must be a string");
  if (present(js, "strict") && !js["strict"].is_boolean())
    throw ValidationError("`response_format.json_schema.strict` must be a boolean");
  // strict or not, the output always follows the schema: decoding is constrained.
  p.json_output = true;
  p.json_schema = present(js, "schema") ? json::parse(js["schema"].dump()) : json::object();
}

// A field this server does not implement (logit_bias, suffix's siblings, a new
// OpenAI field) is refused by name rather than ignored; null counts as absent.
void refuse_unknown_fields(const ojson& b, std::initializer_list<const char*> own) {
  static const std::set<std::string> common = {"model", "stream", "stream_options", "n", "best_of", "temperature",
                                               "top_p", "frequency_penalty", "presence_penalty", "seed", "stop",
                                               "max_tokens", "max_completion_tokens", "response_format", "user"};
  for (auto it = b.begin(); it != b.end(); ++it) {
    const std::string& key = it.key();
    if (it->is_null() || common.count(key)) continue;
    if (std::none_of(own.begin(), own.end(), [&key](const char* k) { return key == k; }))
      throw ValidationError("`" + key + "` is not supported");
  }
}

// The fields both endpoints share, mapped onto /generate parameters.
OpenAIRequest parse_common(const ojson& b) {
  if (!b.is_object()) throw ValidationError("request body must be a JSON object");
  OpenAIRequest r;
  if (present(b, "model")) {
    if (!b["model"].is_string()) throw ValidationError("`model` must be a string");
    r.model = b["model"].get<std::string>();
  }
  if (present(b, "stream")) r.stream = boolean(b, "stream");
  if (present(b, "stream_options")) {
    const ojson& so = b["stream_options"];
    if (!so.is_object()) throw ValidationError("`stream_options` must be an object");
    for (auto& [key, _] : so.items())
      if (key != "include_usage") throw ValidationError("`stream_options." + key + "` is not supported");
    if (present(so, "include_usage")) r.include_usage = boolean(so, "include_usage");
  }
  if (present(b, "n")) {
    r.n = integer(b, "n");
    if (r.n < 1) throw ValidationError("`n` must be at least 1");
  }
  r.best_of = r.n;
  if (present(b, "best_of")) {
    r.best_of = integer(b, "best_of");
    if (r.best_of < r.n) throw ValidationError("`best_of` must be at least `n`");
    if (r.best_of > r.n && r.stream) throw ValidationError("`best_of` greater than `n` cannot be streamed");
  }
  SamplingParams& s = r.params.sampling;
  // temperature 0 (or none) is greedy decoding; a positive one samples.
  if (present(b, "temperature")) {
    double t = number(b, "temperature");
    if (std::isnan(t) || t < 0 || t > 2) throw ValidationError("`temperature` must be >= 0.0 and <= 2.0");
    if (t > 0) {
      s.do_sample = true;
      s.temperature = t;
    }
  }
  if (present(b, "top_p")) s.top_p = number(b, "top_p");
  if (present(b, "frequency_penalty")) s.frequency_penalty = number(b, "frequency_penalty");
  if (present(b, "presence_penalty")) s.presence_penalty = number(b, "presence_penalty");
  if (present(b, "seed")) {
    if (!b["seed"].is_number_unsigned()) throw ValidationError("`seed` must be a non-negative integer");
    s.seed = b["seed"].get<uint64_t>();
  }
  if (std::string err = s.validate(); !err.empty()) throw ValidationError(err);
  if (present(b, "stop")) {
    const ojson& st = b["stop"];
    if (st.is_string()) {
      r.params.stop.push_back(st.get<std::string>());
    } else if (st.is_array()) {
      for (auto& v : st) {
        if (!v.is_string()) throw ValidationError("`stop` must be a string or a list of strings");
        r.params.stop.push_back(v.get<std::string>());
      }
    } else {
      throw ValidationError("`stop` must be a string or a list of strings");
    }
    if (r.params.stop.size() > static_cast<size_t>(kMaxStopSequences))
      throw ValidationError("`stop` must hold at most " + std::to_string(kMaxStopSequences) + " sequences");
  }
  for (const char* k : {"max_tokens", "max_completion_tokens"})
    if (present(b, k)) {
      int v = integer(b, k);
      if (v <= 0) throw ValidationError(std::string("`") + k + "` must be strictly positive");
      r.params.max_new_tokens = v;
    }
  if (present(b, "response_format")) response_format(b["response_format"], r.params);
  r.params.details = true;
  return r;
}

}  // namespace

OpenAIRequest parse_completion_request(const ojson& b) {
  OpenAIRequest r = parse_common(b);
  refuse_unknown_fields(b, {"prompt", "echo", "logprobs", "suffix"});
  if (!b.contains("prompt")) throw ValidationError("`prompt` is required");
  const ojson& p = b["prompt"];
  if (p.is_string()) {
    r.prompt = p.get<std::string>();
  } else if (p.is_array() && p.size() == 1 && p[0].is_string()) {
    r.prompt = p[0].get<std::string>();
  } else {
    throw ValidationError("`prompt` must be a string (or a list of one string)");
  }
  if (present(b, "echo")) r.echo = boolean(b, "echo");
  if (present(b, "logprobs")) {  // an integer: how many alternatives per token
    r.logprobs = true;
    r.top_logprobs = integer(b, "logprobs");
    if (r.top_logprobs < 0 || r.top_logprobs > kMaxCompletionLogprobs)
      throw ValidationError("`logprobs` must be between 0 and " + std::to_string(kMaxCompletionLogprobs));
    if (r.echo) throw ValidationError("`logprobs` together with `echo` (log-probs of the prompt) is not supported");
  }
  if (present(b, "suffix")) throw ValidationError("`suffix` is not supported");
  return r;
}

OpenAIRequest parse_chat_request(const ojson& b) {
  OpenAIRequest r = parse_common(b);
  refuse_unknown_fields(b, {"messages", "tools", "tool_choice", "parallel_tool_calls", "logprobs", "top_logprobs"});
  if (!b.contains("messages") || !b["messages"].is_array() || b["messages"].empty())
    throw ValidationError("`messages` must be a non-empty list");
  r.messages = ojson::array();
  for (const ojson& m : b["messages"]) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      throw ValidationError("each message must be an object with a string `role`");
    ojson msg = m;
    // Content parts ([{"type":"text","text":...}]) become one string: templates expect text.
    if (m.contains("content") && m["content"].is_array()) {
      std::string text;
      for (const ojson& part : m["content"]) {
        if (!part.is_object() || !part.contains("type") || part["type"] != "text" || !part.contains("text") ||
            !part["text"].is_string())
          throw ValidationError("only text content parts are supported");
        text += part["text"].get<std::string>();
      }
      msg["content"] = text;
    } else if (m.contains("content") && !m["content"].is_string() && !m["content"].is_null()) {
      throw ValidationError("message `content` must be a string or a list of text parts");
    }
    r.messages.push_back(std::move(msg));
  }
  if (present(b, "tools")) {
    if (!b["tools"].is_array()) throw ValidationError("`tools` must be a list");
    r.tools = b["tools"];
  }
  r.tool_spec = parse_tools(r.tools, present(b, "tool_choice") ? b["tool_choice"] : ojson(),
                            present(b, "parallel_tool_calls") ? b["parallel_tool_calls"] : ojson());
  if (r.tool_spec.constrained()) {
    if (r.params.json_output)
      throw ValidationError("`response_format` cannot be combined with a required or named `tool_choice`");
    r.params.json_output = true;
    r.params.json_schema = tool_call_schema(r.tool_spec);
  }
  if (present(b, "logprobs")) r.logprobs = boolean(b, "logprobs");
  if (present(b, "top_logprobs")) {
    r.top_logprobs = integer(b, "top_logprobs");
    if (r.top_logprobs < 0 || r.top_logprobs > kMaxTopTokens)
      throw ValidationError("`top_logprobs` must be between 0 and " + std::to_string(kMaxTopTokens));
    if (!r.logprobs) throw ValidationError("`top_logprobs` needs `logprobs` set to true");
  }
  return r;
}

const char* openai_finish_reason(FinishReason r) { return r == FinishReason::Length ? "length" : "stop"; }

json usage_json(const TokenUsage& usage) {
  return {{"prompt_tokens", usage.prompt},
          {"completion_tokens", usage.completion},
          {"total_tokens", usage.prompt + usage.completion},
          {"prompt_tokens_details", {{"cached_tokens", usage.cached}}}};
}

namespace {
json envelope(const OpenAIIds& ids, const char* object) {
  return {{"id", ids.id}, {"object", object}, {"created", ids.created}, {"model", ids.model},
          {"system_fingerprint", nullptr}};
}
}  // namespace

json completion_choice(size_t index, const std::string& text, const char* finish, const json& logprobs) {
  return {{"index", index}, {"text", text}, {"logprobs", logprobs}, {"finish_reason", finish ? json(finish) : json(nullptr)}};
}

json chat_choice(size_t index, const json& message, const char* finish, const json& logprobs) {
  return {{"index", index}, {"message", message}, {"logprobs", logprobs},
          {"finish_reason", finish ? json(finish) : json(nullptr)}};
}

json completion_response(const OpenAIIds& ids, const json& choices, const TokenUsage& usage) {
  json out = envelope(ids, "text_completion");
  out["choices"] = choices;
  out["usage"] = usage_json(usage);
  return out;
}

json chat_response(const OpenAIIds& ids, const json& choices, const TokenUsage& usage) {
  json out = envelope(ids, "chat.completion");
  out["choices"] = choices;
  out["usage"] = usage_json(usage);
  return out;
}

json completion_chunk(const OpenAIIds& ids, size_t index, const std::string& text, const char* finish,
                      const json& logprobs) {
  json out = envelope(ids, "text_completion");
  out["choices"] = json::array({completion_choice(index, text, finish, logprobs)});
  return out;
}

json chat_chunk(const OpenAIIds& ids, size_t index, const json& delta, const char* finish, const json& logprobs) {
  json out = envelope(ids, "chat.completion.chunk");
  out["choices"] = json::array({{{"index", index},
                                 {"delta", delta},
                                 {"logprobs", logprobs},
                                 {"finish_reason", finish ? json(finish) : json(nullptr)}}});
  return out;
}

json usage_chunk(const OpenAIIds& ids, bool chat, const TokenUsage& usage) {
  json out = envelope(ids, chat ? "chat.completion.chunk" : "text_completion");
  out["choices"] = json::array();
  out["usage"] = usage_json(usage);
  return out;
}

}  // namespace lorax::server
