// A generation request as the scheduler sees it, and what it reports back.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sampling/sampling.h"

namespace lorax {

struct AdapterWeights;
namespace structured {
class Schema;
}

struct StoppingParams {
  int max_new_tokens = 20;
  std::vector<std::string> stop;
  bool ignore_eos_token = false;
};

enum class FinishReason { Length, EosToken, StopSequence, Cancelled, Error };
const char* finish_reason_name(FinishReason r);

// One of the most likely tokens at a generated position (top_n_tokens, top_logprobs).
struct AlternativeToken {
  int32_t id = 0;
  std::string text;  // the token's own bytes (Tokenizer::token_bytes; its token string if special)
  float logprob = 0.0f;
  bool special = false;
};

struct GeneratedToken {
  int32_t id = 0;
  std::string text;  // the text this token adds (its token string if special)
  float logprob = 0.0f;
  bool special = false;
  // With GenerationRequest::token_pieces or top_n_tokens: the token's own bytes,
  // as AlternativeToken::text (`text` may hold back a partial UTF-8 character or
  // carry one an earlier token started; this never does).
  std::string piece;
  std::vector<AlternativeToken> top_tokens;  // top_n_tokens most likely first (with this token's own logprob)
};

struct PrefillToken {
  int32_t id = 0;
  std::string text;
  std::optional<float> logprob;  // none for the first token
};

struct FinishInfo {
  FinishReason reason = FinishReason::Length;
  std::string generated_text;
  std::optional<uint64_t> seed;  // set when sampling
  std::vector<PrefillToken> prefill;
  std::vector<GeneratedToken> tokens;
  std::string error;  // for FinishReason::Error
  int cached_tokens = 0;  // prompt tokens whose K/V came from the prefix cache when it was first scheduled
  std::vector<float> embedding;  // an embedding request's result
  double queue_seconds = 0, inference_seconds = 0, total_seconds = 0;
};

struct GenerationRequest {
  std::vector<int32_t> prompt_ids;
  SamplingParams sampling;
  StoppingParams stopping;
  bool prefill_details = false;  // compute prompt log-probs (decoder_input_details)
  int top_n_tokens = 0;          // 0..kMaxTopTokens alternatives reported per generated token
  bool token_pieces = false;     // every GeneratedToken carries its `piece`
  // An embedding request (embedding models only): the prompt is run and pooled
  // into FinishInfo::embedding; nothing is generated.
  bool embed = false;
  // Constrained decoding: the generated text is a JSON text this schema accepts
  // (engine/structured); null for free text.
  std::shared_ptr<const structured::Schema> schema;
  // The adapter: its id (empty: the base model), and either its weights already
  // resolved (CLI, benchmarks) or none, when the engine's AdapterResidency makes
  // it resident before the request runs.
  std::string adapter_id;
  std::shared_ptr<const AdapterWeights> adapter;
  // Kept alive while the request lives and dropped when it finishes: the store's
  // ticket that keeps the adapter's host copy from being dropped meanwhile.
  std::shared_ptr<void> adapter_hold;
  std::function<void(const GeneratedToken&)> on_token;  // optional, streaming
  std::function<void(const FinishInfo&)> on_finish;     // always called once
};

}  // namespace lorax
