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

// Never reused within a process, unlike addresses: recorded graphs key on it.
uint64_t next_adapter_uid();

struct AdapterWeights {
  std::string id;
  uint64_t uid = next_adapter_uid();
  int max_rank = 0;
  // layers[l][projection] -> the slots of that projection this adapter targets.
  std::vector<std::array<std::vector<LoraSlot>, kNumProjections>> layers;
  std::optional<LoraPair> lm_head;
  size_t bytes = 0;
};

struct AdapterBatch {
  std::vector<const AdapterWeights*> adapters;   // segment adapter index -> weights
  std::vector<AdapterSegment> token_segments;    // over the batch's tokens
  std::vector<AdapterSegment> lm_head_segments;  // over the lm_head_indices rows

  // Builds lm_head_segments from token segments and the batch's lm_head_indices.
  void derive_lm_head_segments(const std::vector<int32_t>& lm_head_indices);
  // The LoRA calls of one projection: adapters may target different parts of a
  // fused projection (q of qkv for one, v for another), so one call per column offset.
  std::vector<LoraCall> calls(int layer, Projection proj) const;
  void apply_lm_head(Backend& be, const Tensor& selected, Tensor& logits) const;
  // Identifies segments and adapters, for keying recorded graphs.
  std::string signature() const;
};

}  // namespace lorax
