// What one logits row of a forward must turn into, identical for every
// backend: the log-prob of a given prompt token, or a token chosen with TGI/LoRAX
// semantics (penalties, then temperature, top-k, top-p, typical-p, then argmax
// or a draw). The draw's random number comes from the request's own RNG on the
// host, so a seed gives the same tokens whichever backend chooses.
#pragma once
#include <cstdint>
#include <vector>

namespace lorax {

// At most this many alternatives per token (OpenAI's top_logprobs bound).
inline constexpr int kMaxTopTokens = 20;

struct TokenAlternative {
  int32_t id = 0;
  float logprob = 0.0f;
};

struct TokenChoice {
  int32_t id = 0;
  float logprob = 0.0f;
  // RowChoice::top_n > 0: the most likely tokens of the distribution `logprob`
  // is over, most likely first, ties in id order; only tokens it allows (finite).
  std::vector<TokenAlternative> top;
};

// One distinct token of a request's context, for the repetition (in_context) and
// frequency/presence (generated_count) penalties.
struct PenaltyToken {
  int32_t token = 0;
  int32_t generated_count = 0;
  int32_t in_context = 0;
};

// Constrained decoding: only tokens whose bit is set may be chosen (bit id % 32 of
// words[id / 32]; ids past count * 32 are not allowed). Null words: every token.
// The words belong to the request and outlive the choice.
struct AllowedTokens {
  const uint32_t* words = nullptr;
  size_t count = 0;
  explicit operator bool() const { return words != nullptr; }
  bool allows(int64_t id) const {
    return !words || (id >= 0 && static_cast<size_t>(id / 32) < count && (words[id / 32] >> (id % 32) & 1));
  }
};

struct RowChoice {
  int32_t prompt_target = -1;  // >= 0: only the log-prob of this (prompt) token, from the raw logits
  bool sample = false;         // draw from the warped distribution; else argmax after penalties
  double temperature = 1.0;
  int32_t top_k = 0;
  double top_p = 1.0;
  double typical_p = 1.0;
  double repetition_penalty = 1.0;
  double frequency_penalty = 0.0;
  double presence_penalty = 0.0;
  double uniform = 0.0;               // in [0, 1): the draw picks the first token whose cumulative mass exceeds it
  std::vector<PenaltyToken> penalties;  // empty unless a penalty is set
  AllowedTokens allowed;  // constrained decoding; applied before penalties and warpers
  int32_t top_n = 0;      // 0..kMaxTopTokens alternatives to report with the chosen token
};

}  // namespace lorax
