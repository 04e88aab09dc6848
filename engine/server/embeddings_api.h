// Embedding requests of an embedding model (model/embedding_head.h): LoRAX
// `POST /embed` {"inputs": str, "parameters": {adapter_id, adapter_source,
// api_token}} -> {"embeddings": [float]}, and OpenAI `POST /v1/embeddings`
// {"input": str | [str] | [int] | [[int]], "model", "encoding_format":
// "float"|"base64", "dimensions", "user"} -> {"object": "list", "data": [...],
// "model", "usage"}. Each text is one engine request; the response is written
// once all have finished. Free of any HTTP library.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/api/generate_api.h"
#include "server/response_formats.h"

namespace lorax::server {

// At most this many texts per /v1/embeddings request.
inline constexpr size_t kMaxEmbeddingInputs = 256;

struct EmbedRequest {
  std::vector<std::string> texts;                 // to tokenize (with special tokens)
  std::vector<std::vector<int32_t>> token_inputs;  // or already token ids (OpenAI)
  std::string model;          // OpenAI: the base model or an adapter
  std::string adapter_id, adapter_source, api_token;  // LoRAX parameters
  bool base64 = false;
  bool openai = false;
  size_t count() const { return texts.size() + token_inputs.size(); }
};

// Throw ValidationError naming the offending field; `dimension` is the model's
// (a `dimensions` other than it is refused: the model has one output size).
EmbedRequest parse_lorax_embed(const nlohmann::json& body);
EmbedRequest parse_openai_embeddings(const nlohmann::json& body, int64_t dimension);

class EmbeddingFormat : public ResponseFormat {
 public:
  EmbeddingFormat(bool openai, bool base64, std::string model, std::vector<size_t> prompt_tokens)
      : openai_(openai), base64_(base64), model_(std::move(model)), prompt_tokens_(std::move(prompt_tokens)) {}
  std::string stream_token(size_t, const GeneratedToken&) override { return ""; }
  std::string stream_finish(size_t, const FinishInfo&) override { return ""; }
  nlohmann::json body(const std::vector<FinishInfo>& infos) override;

 private:
  bool openai_, base64_;
  std::string model_;
  std::vector<size_t> prompt_tokens_;
};

// The little-endian float32 bytes of `v`, base64-encoded (OpenAI's encoding_format "base64").
std::string base64_floats(const std::vector<float>& v);

}  // namespace lorax::server
