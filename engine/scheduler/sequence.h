// One request as the scheduler tracks it: its tokens, its KV blocks, how far its
// prompt has been computed, the adapter weights it holds while running, and what
// it reports back when it finishes.
#pragma once
#include <chrono>
#include <memory>
#include <optional>
#include <vector>

#include "kv/prefix_cache.h"
#include "scheduler/request.h"
#include "structured/token_mask.h"
#include "tokenizer/tokenizer.h"

namespace lorax {

struct Sequence {
  using Clock = std::chrono::steady_clock;

  uint64_t id = 0;
  GenerationRequest req;
  std::vector<int32_t> tokens;  // prompt + generated
  size_t prompt_len = 0;
  int computed = 0;             // tokens whose K/V are in the cache
  std::vector<int32_t> blocks;
  PrefixChain prefix;           // how many of its full blocks the prefix cache knows
  // The device weights of its adapter while it runs (a lease: never evicted under
  // it); null for the base model and while it waits.
  std::shared_ptr<const AdapterWeights> adapter;
  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<structured::Constraint> constraint;  // when the request has a schema
  std::unique_ptr<IncrementalDetokenizer> detok;
  std::vector<int32_t> generated;
  std::vector<std::optional<float>> prompt_logprobs;
  std::vector<double> pooled;  // an embedding request's pooling so far (over the computed prompt)
  FinishInfo info;
  bool finished = false;
  Clock::time_point arrival, first_scheduled;
  bool scheduled_once = false;

  bool uses_adapter() const { return !req.adapter_id.empty(); }
  int remaining() const { return static_cast<int>(tokens.size()) - computed; }
  bool decoding() const { return remaining() == 1 && computed >= static_cast<int>(prompt_len); }
};

}  // namespace lorax
