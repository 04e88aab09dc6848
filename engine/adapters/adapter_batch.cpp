#include "adapters/adapter_batch.h"

#include <atomic>
#include <set>

namespace lorax {

uint64_t next_adapter_uid() {
  static std::atomic<uint64_t> counter{1};
  return counter++;
}

std::string AdapterBatch::signature() const {
  std::string out;
  for (const AdapterSegment& s : token_segments) {
    out.append(std::to_string(s.start)).append("-").append(std::to_string(s.end)).append(":");
    out.append(s.adapter >= 0 && adapters[s.adapter] ? std::to_string(adapters[s.adapter]->uid) : "base").append(",");
  }
  return out;
}

void AdapterBatch::derive_lm_head_segments(const std::vector<int32_t>& lm_head_indices) {
  lm_head_segments.clear();
  size_t seg = 0;
  for (int32_t row = 0; row < static_cast<int32_t>(lm_head_indices.size()); ++row) {
    const int32_t token = lm_head_indices[row];
    while (seg < token_segments.size() && token >= token_segments[seg].end) ++seg;
    const int32_t adapter = seg < token_segments.size() && token >= token_segments[seg].start ? token_segments[seg].adapter : -1;
    if (!lm_head_segments.empty() && lm_head_segments.back().adapter == adapter && lm_head_segments.back().end == row)
      lm_head_segments.back().end = row + 1;
    else
      lm_head_segments.push_back({row, row + 1, adapter});
  }
}

std::vector<LoraCall> AdapterBatch::calls(int layer, Projection proj) const {
  std::set<int64_t> offsets;
  for (const AdapterWeights* a : adapters)
    if (a && layer < static_cast<int>(a->layers.size()))
      for (const LoraSlot& s : a->layers[layer][static_cast<int>(proj)]) offsets.insert(s.col_offset);
  std::vector<LoraCall> out;
  for (int64_t offset : offsets) {
    LoraCall call;
    call.col_offset = offset;
    call.pairs.assign(adapters.size(), nullptr);
    for (size_t i = 0; i < adapters.size(); ++i) {
      if (!adapters[i] || layer >= static_cast<int>(adapters[i]->layers.size())) continue;
      for (const LoraSlot& s : adapters[i]->layers[layer][static_cast<int>(proj)])
        if (s.col_offset == offset) call.pairs[i] = &s.pair;
    }
    out.push_back(std::move(call));
  }
  return out;
}

void AdapterBatch::apply_lm_head(Backend& be, const Tensor& selected, Tensor& logits) const {
  std::vector<const LoraPair*> pairs(adapters.size(), nullptr);
  bool any = false;
  for (size_t i = 0; i < adapters.size(); ++i)
    if (adapters[i] && adapters[i]->lm_head) {
      pairs[i] = &*adapters[i]->lm_head;
      any = true;
    }
  if (any) be.lora(selected, lm_head_segments, pairs, 0, logits);
}

}  // namespace lorax
