// LoRA weights of the adapters taking part in one forward, and how they are
// applied to the decoder's fused projections segment by segment.
#pragma once
#include <array>
#include <optional>
#include <string>
#include <vector>

#include "runtime/backend.h"

namespace lorax {

enum class Projection { Qkv, O, Up, Down };
constexpr int kNumProjections = 4;

// One LoRA pair writing into columns [col_offset, col_offset + B.rows) of a fused
// projection's output (e.g. k_proj inside qkv).
struct LoraSlot {
  int64_t col_offset = 0;
  LoraPair pair;
};

// Never reused within a process, unlike addresses.
uint64_t next_adapter_uid();

struct AdapterWeights {
  std::string id;
  uint64_t uid = next_adapter_uid();
  int max_rank = 0;
  // layers[l][projection] -> the slots of that projection this adapter targets.
  std::vector<std::array<std::vector<LoraSlot>, kNumProjections>> layers;
  std::optional<LoraPair> lm_head;
  size_t bytes = 0;
  // What K/V computed with these weights are keyed by (prefix caching): the
  // store gives every device copy of one load the same `load_identity`, so
  // cached prefixes survive demotion and promotion; otherwise the uid.
  uint64_t load_identity = 0;
  uint64_t kv_identity() const { return load_identity ? load_identity : uid; }
};

struct AdapterBatch {
  std::vector<const AdapterWeights*> adapters;   // segment adapter index -> weights
  std::vector<AdapterSegment> token_segments;    // over the batch's tokens
  std::vector<AdapterSegment> lm_head_segments;  // over the lm_head_indices rows

  // Derives lm_head_segments from the token segments and the batch's
  // lm_head_indices, and plans every LoRA call of the forward: adapters may
  // target different parts of a fused projection (q of qkv for one, v for
  // another), so a projection makes one call per column offset.
  void finalize(const std::vector<int32_t>& lm_head_indices);
  const std::vector<LoraCall>& calls(int layer, Projection proj) const;
  const LoraCall* lm_head_call() const { return lm_head_call_.pairs.empty() ? nullptr : &lm_head_call_; }
  // The planned calls grouped as the forward makes them, for Backend::prepare_lora.
  std::vector<LoraGroup> groups(int64_t tokens) const;
  void apply_lm_head(Backend& be, const Tensor& selected, Tensor& logits) const;

 private:
  void plan_calls();
  std::vector<std::array<std::vector<LoraCall>, kNumProjections>> calls_;  // [layer][projection]
  LoraCall lm_head_call_;
};

}  // namespace lorax
