#include "server/embeddings_api.h"

#include <bit>
#include <cstring>

#include <openssl/evp.h>

#include "server/api/json_fields.h"

namespace lorax::server {

using json = nlohmann::json;

namespace {

std::string optional_string(const json& o, const char* key, const std::string& where) {
  if (!o.contains(key) || o[key].is_null()) return "";
  if (!o[key].is_string()) throw ValidationError("`" + where + key + "` must be a string");
  return o[key].get<std::string>();
}

std::vector<int32_t> token_list(const json& a) {
  std::vector<int32_t> ids;
  for (const json& t : a) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX)
      throw ValidationError("`input` token ids must be non-negative integers");
    ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  if (ids.empty()) throw ValidationError("`input` must not hold an empty list of tokens");
  return ids;
}

}  // namespace

EmbedRequest parse_lorax_embed(const json& b) {
  if (!b.is_object()) throw ValidationError("request body must be a JSON object");
  for (auto& [key, v] : b.items())
    if (key != "inputs" && key != "parameters" && key != "stream") throw ValidationError("unknown field `" + key + "`");
  if (!b.contains("inputs") || !b["inputs"].is_string()) throw ValidationError("`inputs` must be a string");
  if (b.contains("stream") && b["stream"] == true) throw ValidationError("`stream` is not supported for /embed");
  EmbedRequest r;
  r.texts.push_back(b["inputs"].get<std::string>());
  if (b.contains("parameters") && !b["parameters"].is_null()) {
    const json& p = b["parameters"];
    if (!p.is_object()) throw ValidationError("`parameters` must be an object");
    // lorax-client sends the whole generation parameter set with defaults: only the adapter fields mean anything here.
    for (auto& [key, v] : p.items())
      if (key != "adapter_id" && key != "adapter_source" && key != "api_token" && !v.is_null() &&
          !(v.is_boolean() && !v.get<bool>()) && !(v.is_array() && v.empty()))
        throw ValidationError("`parameters." + key + "` does not apply to embeddings");
    r.adapter_id = optional_string(p, "adapter_id", "parameters.");
    r.adapter_source = optional_string(p, "adapter_source", "parameters.");
    r.api_token = optional_string(p, "api_token", "parameters.");
  }
  return r;
}

EmbedRequest parse_openai_embeddings(const json& b, int64_t dimension) {
  if (!b.is_object()) throw ValidationError("request body must be a JSON object");
  for (auto& [key, v] : b.items())
    if (key != "input" && key != "model" && key != "encoding_format" && key != "dimensions" && key != "user")
      throw ValidationError("unknown field `" + key + "`");
  EmbedRequest r;
  r.openai = true;
  r.model = optional_string(b, "model", "");
  optional_string(b, "user", "");  // accepted and not used
  if (!b.contains("input")) throw ValidationError("`input` is required");
  const json& in = b["input"];
  if (in.is_string()) {
    r.texts.push_back(in.get<std::string>());
  } else if (in.is_array() && !in.empty() && in[0].is_number_integer()) {
    r.token_inputs.push_back(token_list(in));
  } else if (in.is_array() && !in.empty()) {
    for (const json& item : in) {
      if (item.is_string())
        r.texts.push_back(item.get<std::string>());
      else if (item.is_array() && r.texts.empty())
        r.token_inputs.push_back(token_list(item));
      else
        throw ValidationError("`input` must be a string, a list of strings, or token ids (a list or a list of lists)");
    }
    if (!r.texts.empty() && !r.token_inputs.empty())
      throw ValidationError("`input` must not mix strings and token lists");
  } else {
    throw ValidationError("`input` must be a string, a list of strings, or token ids (a list or a list of lists)");
  }
  if (r.count() > kMaxEmbeddingInputs)
    throw ValidationError("`input` must hold at most " + std::to_string(kMaxEmbeddingInputs) + " items");
  for (const std::string& t : r.texts)
    if (t.empty()) throw ValidationError("`input` must not hold an empty string");
  const std::string format = optional_string(b, "encoding_format", "");
  if (!format.empty() && format != "float" && format != "base64")
    throw ValidationError("`encoding_format` must be \"float\" or \"base64\"");
  r.base64 = format == "base64";
  if (b.contains("dimensions") && !b["dimensions"].is_null()) {
    const int64_t d = checked_integer<int64_t>(b, "dimensions");
    if (d != dimension)
      throw ValidationError("`dimensions` " + std::to_string(d) + " is not supported: this model's embeddings have " +
                            std::to_string(dimension));
  }
  return r;
}

std::string base64_floats(const std::vector<float>& v) {
  static_assert(std::endian::native == std::endian::little, "float bytes are sent little-endian");
  const size_t n = v.size() * sizeof(float);
  std::string out(4 * ((n + 2) / 3), '\0');
  const int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(v.data()), static_cast<int>(n));
  out.resize(static_cast<size_t>(len));
  return out;
}

json EmbeddingFormat::body(const std::vector<FinishInfo>& infos) {
  if (!openai_) return {{"embeddings", infos.at(0).embedding}};
  json data = json::array();
  size_t tokens = 0;
  for (size_t i = 0; i < infos.size(); ++i) {
    data.push_back({{"object", "embedding"},
                    {"index", i},
                    {"embedding", base64_ ? json(base64_floats(infos[i].embedding)) : json(infos[i].embedding)}});
    tokens += i < prompt_tokens_.size() ? prompt_tokens_[i] : 0;
  }
  return {{"object", "list"},
          {"data", data},
          {"model", model_},
          {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}};
}

}  // namespace lorax::server
