#include "server/api/generate_api.h"

#include "server/api/json_fields.h"

#include "structured/json_schema.h"
#include "tokenizer/tokenizer.h"

#include <cmath>
#include <set>

namespace lorax {
namespace {

using json = nlohmann::json;

template <typename T>
std::optional<T> field(const json& p, const char* name, const char* expected) {
  if (!p.contains(name) || p[name].is_null()) return std::nullopt;
  const json& v = p[name];
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) return checked_integer<T>(p, name);
  try {
    if constexpr (std::is_same_v<T, bool>) {
      if (!v.is_boolean()) throw ValidationError("");
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (!v.is_string()) throw ValidationError("");
    } else {
      if (!v.is_number()) throw ValidationError("");
    }
    return v.get<T>();
  } catch (const std::exception&) {
    throw ValidationError("`" + std::string(name) + "` must be " + expected);
  }
}

// As lorax-client sends it: {"ids", "weights", "merge_strategy", "density", "majority_sign_method"}.
MergedAdaptersParams parse_merged_adapters(const json& m) {
  if (!m.is_object()) throw ValidationError("`merged_adapters` must be an object");
  for (auto& [key, _] : m.items())
    if (key != "ids" && key != "weights" && key != "merge_strategy" && key != "density" && key != "majority_sign_method")
      throw ValidationError("unknown `merged_adapters` field `" + key + "`");
  MergedAdaptersParams out;
  if (!m.contains("ids") || !m["ids"].is_array() || m["ids"].empty())
    throw ValidationError("`merged_adapters.ids` must be a non-empty list of adapter ids");
  for (const json& id : m["ids"]) {
    if (!id.is_string()) throw ValidationError("`merged_adapters.ids` must be a list of strings");
    out.ids.push_back(id.get<std::string>());
  }
  if (!m.contains("weights") || !m["weights"].is_array())
    throw ValidationError("`merged_adapters.weights` must be a list of numbers, one per id");
  for (const json& w : m["weights"]) {
    if (!w.is_number()) throw ValidationError("`merged_adapters.weights` must be a list of numbers");
    out.weights.push_back(w.get<double>());
  }
  if (m.contains("merge_strategy") && !m["merge_strategy"].is_null()) {
    if (!m["merge_strategy"].is_string()) throw ValidationError("`merged_adapters.merge_strategy` must be a string");
    out.merge_strategy = m["merge_strategy"].get<std::string>();
  }
  if (m.contains("majority_sign_method") && !m["majority_sign_method"].is_null()) {
    if (!m["majority_sign_method"].is_string())
      throw ValidationError("`merged_adapters.majority_sign_method` must be a string");
    out.majority_sign_method = m["majority_sign_method"].get<std::string>();
  }
  // LoRAX's router defaults density to 0, which prunes everything: here ties and DARE must say it.
  if (m.contains("density") && !m["density"].is_null()) {
    if (!m["density"].is_number()) throw ValidationError("`merged_adapters.density` must be a number");
    out.density = m["density"].get<double>();
  } else if (out.merge_strategy != "linear") {
    throw ValidationError("`merged_adapters.density` is required for merge_strategy " + out.merge_strategy);
  }
  return out;
}

}  // namespace

GenerateParameters parse_generate_parameters(const json& p) {
  if (!p.is_object()) throw ValidationError("`parameters` must be an object");
  static const std::set<std::string> known = {
      "adapter_id", "adapter_source", "api_token", "max_new_tokens", "do_sample", "temperature", "top_k", "top_p",
      "typical_p", "repetition_penalty", "frequency_penalty", "presence_penalty", "seed", "stop", "truncate",
      "return_full_text", "details", "decoder_input_details", "best_of", "watermark", "ignore_eos_token",
      "response_format", "merged_adapters", "adapter_parameters", "top_n_tokens", "return_k_alternatives"};
  for (auto& [key, _] : p.items())
    if (!known.count(key)) throw ValidationError("unknown parameter `" + key + "`");
  GenerateParameters out;
  out.adapter_id = field<std::string>(p, "adapter_id", "a string");
  out.adapter_source = field<std::string>(p, "adapter_source", "a string");
  if (out.adapter_source && *out.adapter_source != "local" && *out.adapter_source != "hub" &&
      *out.adapter_source != "s3" && *out.adapter_source != "url")
    throw ValidationError("`adapter_source` must be one of local, hub, s3, url");
  out.api_token = field<std::string>(p, "api_token", "a string");
  out.max_new_tokens = field<int>(p, "max_new_tokens", "an integer");
  if (out.max_new_tokens && *out.max_new_tokens <= 0) throw ValidationError("`max_new_tokens` must be strictly positive");
  SamplingParams& s = out.sampling;
  s.do_sample = field<bool>(p, "do_sample", "a boolean").value_or(false);
  s.temperature = field<double>(p, "temperature", "a number").value_or(1.0);
  s.top_k = field<int>(p, "top_k", "an integer").value_or(0);
  s.top_p = field<double>(p, "top_p", "a number").value_or(1.0);
  s.typical_p = field<double>(p, "typical_p", "a number").value_or(1.0);
  s.repetition_penalty = field<double>(p, "repetition_penalty", "a number").value_or(1.0);
  s.frequency_penalty = field<double>(p, "frequency_penalty", "a number").value_or(0.0);
  s.presence_penalty = field<double>(p, "presence_penalty", "a number").value_or(0.0);
  if (p.contains("seed") && !p["seed"].is_null()) {
    const json& seed = p["seed"];
    if (!seed.is_number_unsigned() && !(seed.is_number_integer() && seed.get<int64_t>() >= 0))
      throw ValidationError("`seed` must be a non-negative integer");
    s.seed = seed.is_number_unsigned() ? seed.get<uint64_t>() : static_cast<uint64_t>(seed.get<int64_t>());
  }
  if (std::string err = s.validate(); !err.empty()) throw ValidationError(err);
  if (p.contains("stop") && !p["stop"].is_null()) {
    if (!p["stop"].is_array()) throw ValidationError("`stop` must be a list of strings");
    for (auto& v : p["stop"]) {
      if (!v.is_string()) throw ValidationError("`stop` must be a list of strings");
      out.stop.push_back(v.get<std::string>());
    }
    if (out.stop.size() > static_cast<size_t>(kMaxStopSequences))
      throw ValidationError("`stop` must hold at most " + std::to_string(kMaxStopSequences) + " sequences");
  }
  out.truncate = field<int>(p, "truncate", "an integer");
  if (out.truncate && *out.truncate <= 0) throw ValidationError("`truncate` must be strictly positive");
  out.return_full_text = field<bool>(p, "return_full_text", "a boolean").value_or(false);
  out.details = field<bool>(p, "details", "a boolean").value_or(false);
  out.decoder_input_details = field<bool>(p, "decoder_input_details", "a boolean").value_or(false);
  out.best_of = field<int>(p, "best_of", "an integer").value_or(1);
  if (out.best_of < 1) throw ValidationError("`best_of` must be strictly positive");
  // As TGI/LoRAX: the candidates must differ, and each draws its own seed.
  if (out.best_of > 1 && !s.sampling()) throw ValidationError("you must use sampling when `best_of` is > 1");
  if (out.best_of > 1 && s.seed) throw ValidationError("`seed` must not be set when `best_of` > 1");
  out.top_n_tokens = field<int>(p, "top_n_tokens", "an integer").value_or(0);
  if (out.top_n_tokens < 0 || out.top_n_tokens > kMaxTopTokens)
    throw ValidationError("`top_n_tokens` must be >= 0 and <= " + std::to_string(kMaxTopTokens) +
                          ". Given: " + std::to_string(out.top_n_tokens));
  out.return_k_alternatives = field<int>(p, "return_k_alternatives", "an integer").value_or(0);
  if (out.return_k_alternatives < 0 || out.return_k_alternatives > kMaxTopTokens)
    throw ValidationError("`return_k_alternatives` must be >= 0 and <= " + std::to_string(kMaxTopTokens));
  // `adapter_parameters` is LoRAX's internal name of the same field; either is read, not both.
  const bool merged = p.contains("merged_adapters") && !p["merged_adapters"].is_null();
  const bool aliased = p.contains("adapter_parameters") && !p["adapter_parameters"].is_null();
  if (merged && aliased) throw ValidationError("`merged_adapters` and `adapter_parameters` cannot both be set");
  if (merged || aliased) {
    if (out.adapter_id) throw ValidationError("`adapter_id` and `merged_adapters` cannot both be set");
    out.merged_adapters = parse_merged_adapters(p[merged ? "merged_adapters" : "adapter_parameters"]);
  }
  out.watermark = field<bool>(p, "watermark", "a boolean").value_or(false);
  if (out.watermark) throw ValidationError("`watermark` is not supported");
  out.ignore_eos_token = field<bool>(p, "ignore_eos_token", "a boolean").value_or(false);
  if (p.contains("response_format") && !p["response_format"].is_null()) parse_response_format(p["response_format"], out);
  return out;
}

void parse_response_format(const json& rf, GenerateParameters& out) {
  if (!rf.is_object() || !rf.contains("type") || !rf["type"].is_string())
    throw ValidationError("`response_format` must be an object with a string `type`");
  for (auto& [key, _] : rf.items())
    if (key != "type" && key != "schema") throw ValidationError("unknown `response_format` field `" + key + "`");
  const std::string type = rf["type"].get<std::string>();
  if (type == "text") return;
  if (type != "json_object") throw ValidationError("`response_format.type` must be \"json_object\" or \"text\"");
  out.json_output = true;
  out.json_schema = rf.contains("schema") ? rf["schema"] : json();
}

GenerateBody parse_generate_body(const json& body) {
  if (!body.is_object()) throw ValidationError("request body must be a JSON object");
  if (!body.contains("inputs") || !body["inputs"].is_string()) throw ValidationError("`inputs` must be a string");
  for (auto& [key, _] : body.items())
    if (key != "inputs" && key != "parameters" && key != "stream")
      throw ValidationError("unknown field `" + key + "`");
  GenerateBody out;
  out.inputs = body["inputs"].get<std::string>();
  if (body.contains("parameters") && !body["parameters"].is_null())
    out.parameters = parse_generate_parameters(body["parameters"]);
  return out;
}

GenerationRequest build_generation_request(const GenerateBody& body, const Tokenizer& tokenizer,
                                           const RequestLimits& limits) {
  if (body.inputs.empty()) throw ValidationError("`inputs` must not be empty");
  std::vector<int32_t> ids = tokenizer.encode(body.inputs, true);
  if (ids.empty()) throw ValidationError("`inputs` produced no tokens");
  return build_generation_request(std::move(ids), body.parameters, limits);
}

GenerationRequest build_generation_request(std::vector<int32_t> prompt_ids, const GenerateParameters& p,
                                           const RequestLimits& limits) {
  GenerationRequest req;
  req.prompt_ids = std::move(prompt_ids);
  if (req.prompt_ids.empty()) throw ValidationError("the prompt produced no tokens");
  if (p.truncate && static_cast<int>(req.prompt_ids.size()) > *p.truncate)
    req.prompt_ids.erase(req.prompt_ids.begin(), req.prompt_ids.end() - *p.truncate);
  const int input_len = static_cast<int>(req.prompt_ids.size());
  if (input_len > limits.max_input_length)
    throw ValidationError("`inputs` must have less than " + std::to_string(limits.max_input_length) +
                          " tokens. Given: " + std::to_string(input_len));
  int max_new = p.max_new_tokens.value_or(std::min(limits.default_max_new_tokens, limits.max_total_tokens - input_len));
  if (max_new <= 0 || input_len + max_new > limits.max_total_tokens)
    throw ValidationError("`inputs` tokens + `max_new_tokens` must be <= " + std::to_string(limits.max_total_tokens) +
                          ". Given: " + std::to_string(input_len) + " `inputs` tokens and " + std::to_string(max_new) +
                          " `max_new_tokens`");
  req.sampling = p.sampling;
  req.stopping.max_new_tokens = max_new;
  req.stopping.stop = p.stop;
  req.stopping.ignore_eos_token = p.ignore_eos_token;
  req.prefill_details = p.decoder_input_details;
  req.top_n_tokens = std::max(p.top_n_tokens, p.return_k_alternatives);
  req.adapter_id = p.adapter_id.value_or("");
  if (p.json_output) {
    if (p.json_schema.is_null()) {
      req.schema = structured::Schema::any_object();
    } else {
      if (p.json_schema.dump().size() > limits.max_schema_bytes)
        throw ValidationError("`response_format.schema` is larger than " + std::to_string(limits.max_schema_bytes) +
                              " bytes (--max-schema-bytes)");
      try {
        req.schema = structured::compile_cached(p.json_schema);
      } catch (const structured::SchemaError& e) {
        throw ValidationError(std::string("`response_format.schema`: ") + e.what());
      }
    }
  }
  return req;
}

json token_json(const GeneratedToken& tok, int alternatives) {
  json out = {{"id", tok.id}, {"text", tok.text}, {"logprob", tok.logprob}, {"special", tok.special}};
  if (alternatives > 0) {
    json alt = json::array();
    for (size_t k = 0; k < tok.top_tokens.size() && k < static_cast<size_t>(alternatives); ++k)
      alt.push_back({{"id", tok.top_tokens[k].id}, {"text", tok.top_tokens[k].text}, {"logprob", tok.top_tokens[k].logprob}});
    out["alternative_tokens"] = alt;
  }
  return out;
}

json top_tokens_json(const GeneratedToken& tok, int n) {
  json out = json::array();
  for (size_t k = 0; k < tok.top_tokens.size() && k < static_cast<size_t>(n); ++k) {
    const AlternativeToken& t = tok.top_tokens[k];
    out.push_back({{"id", t.id}, {"text", t.text}, {"logprob", t.logprob}, {"special", t.special}});
  }
  return out;
}

double mean_logprob(const FinishInfo& info) {
  if (info.tokens.empty()) return -INFINITY;
  double sum = 0;
  for (const GeneratedToken& t : info.tokens) sum += t.logprob;
  return sum / static_cast<double>(info.tokens.size());
}

namespace {

// finish_reason .. tokens of one sequence (details and best_of_sequences share them).
json sequence_details(const FinishInfo& info, const GenerateParameters& params) {
  json d;
  d["finish_reason"] = finish_reason_name(info.reason);
  d["generated_tokens"] = info.tokens.size();
  d["seed"] = info.seed ? json(*info.seed) : json(nullptr);
  json prefill = json::array();
  if (params.decoder_input_details)
    for (const PrefillToken& t : info.prefill)
      prefill.push_back({{"id", t.id}, {"text", t.text}, {"logprob", t.logprob ? json(*t.logprob) : json(nullptr)}});
  d["prefill"] = prefill;
  json tokens = json::array(), top = json::array();
  for (const GeneratedToken& t : info.tokens) {
    tokens.push_back(token_json(t, params.return_k_alternatives));
    if (params.top_n_tokens > 0) top.push_back(top_tokens_json(t, params.top_n_tokens));
  }
  d["tokens"] = tokens;
  if (params.top_n_tokens > 0) d["top_tokens"] = top;
  return d;
}

}  // namespace

size_t best_sequence(const std::vector<FinishInfo>& infos) {
  size_t best = 0;
  for (size_t i = 1; i < infos.size(); ++i)
    if (mean_logprob(infos[i]) > mean_logprob(infos[best])) best = i;
  return best;
}

json generate_response(const std::vector<FinishInfo>& infos, const GenerateParameters& params,
                       const std::string& prompt) {
  const size_t best = best_sequence(infos);
  const FinishInfo& info = infos[best];
  auto text_of = [&](const FinishInfo& i) { return params.return_full_text ? prompt + i.generated_text : i.generated_text; };
  json out;
  out["generated_text"] = text_of(info);
  if (params.details || params.decoder_input_details) {
    json details = sequence_details(info, params);
    if (infos.size() > 1) {
      json others = json::array();
      for (size_t i = 0; i < infos.size(); ++i) {
        if (i == best) continue;
        json seq = sequence_details(infos[i], params);
        seq["generated_text"] = text_of(infos[i]);
        others.push_back(seq);
      }
      details["best_of_sequences"] = others;
    }
    out["details"] = details;
  }
  return out;
}

}  // namespace lorax
