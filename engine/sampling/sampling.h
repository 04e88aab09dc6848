// Logits processing and token choice for one request, with TGI/LoRAX
// semantics: penalties, then temperature, top-k, top-p, typical-p, then greedy
// or a seeded draw. One Sampler per request keeps its own RNG, so a seed gives
// the same tokens whatever else shares the batch.
#pragma once
#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "runtime/token_choice.h"

namespace lorax {

struct SamplingParams {
  bool do_sample = false;
  double temperature = 1.0;
  int top_k = 0;
  double top_p = 1.0;
  double typical_p = 1.0;
  double repetition_penalty = 1.0;
  double frequency_penalty = 0.0;
  double presence_penalty = 0.0;
  std::optional<uint64_t> seed;

  // Sampling happens when asked for or when any warper would change the distribution.
  bool sampling() const {
    return do_sample || temperature != 1.0 || top_k > 0 || top_p < 1.0 || typical_p < 1.0;
  }
  // Empty when valid; otherwise the reason, for the 422 error.
  std::string validate() const;
};

// Turns a request's parameters and history into the RowChoice of its next token,
// drawing the random number from the request's RNG (one per sampled token).
class Sampler {
 public:
  Sampler(const SamplingParams& params, uint64_t seed);
  // `context` = prompt + generated ids (repetition penalty), `generated` = generated ids only
  // (frequency/presence penalties).
  RowChoice next(std::span<const int32_t> context, std::span<const int32_t> generated);
  uint64_t seed() const { return seed_; }

 private:
  SamplingParams p_;
  uint64_t seed_;
  std::mt19937_64 rng_;
};

// The host implementation of a RowChoice over one logits row (the reference the
// CUDA sampling kernel is tested against).
TokenChoice choose_token(std::span<const float> logits, const RowChoice& row);

// log_softmax(logits)[id], in double for accuracy.
float token_logprob(std::span<const float> logits, int32_t id);

// The n highest-scoring finite entries of `scores` with their log_softmax values
// (as token_logprob gives them), highest first, equal scores in id order.
std::vector<TokenAlternative> top_tokens(std::span<const float> scores, int n);

}  // namespace lorax
