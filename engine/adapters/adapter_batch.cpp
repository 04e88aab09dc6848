#include "adapters/adapter_batch.h"

#include <algorithm>
#include <atomic>
#include <set>

namespace lorax {

uint64_t next_adapter_uid() {
  static std::atomic<uint64_t> counter{1};
  return counter++;
}

void AdapterBatch::finalize(const std::vector<int32_t>& lm_head_indices) {
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
  plan_calls();
}

void AdapterBatch::plan_calls() {
  size_t layers = 0;
  for (const AdapterWeights* a : adapters)
    if (a) layers = std::max(layers, a->layers.size());
  calls_.assign(layers, {});
  int next_id = 0;
  for (size_t layer = 0; layer < layers; ++layer)
    for (int proj = 0; proj < kNumProjections; ++proj) {
      std::set<int64_t> offsets;
      for (const AdapterWeights* a : adapters)
        if (a && layer < a->layers.size())
          for (const LoraSlot& s : a->layers[layer][proj]) offsets.insert(s.col_offset);
      for (int64_t offset : offsets) {
        LoraCall call;
        call.col_offset = offset;
        call.id = next_id++;
        call.pairs.assign(adapters.size(), nullptr);
        for (size_t i = 0; i < adapters.size(); ++i) {
          if (!adapters[i] || layer >= adapters[i]->layers.size()) continue;
          for (const LoraSlot& s : adapters[i]->layers[layer][proj])
            if (s.col_offset == offset) call.pairs[i] = &s.pair;
        }
        calls_[layer][proj].push_back(std::move(call));
      }
    }
  lm_head_call_ = {};
  for (size_t i = 0; i < adapters.size(); ++i)
    if (adapters[i] && adapters[i]->lm_head) {
      if (lm_head_call_.pairs.empty()) lm_head_call_.pairs.assign(adapters.size(), nullptr);
      lm_head_call_.pairs[i] = &*adapters[i]->lm_head;
    }
  if (!lm_head_call_.pairs.empty()) lm_head_call_.id = next_id++;
}

const std::vector<LoraCall>& AdapterBatch::calls(int layer, Projection proj) const {
  static const std::vector<LoraCall> none;
  return layer < static_cast<int>(calls_.size()) ? calls_[layer][static_cast<int>(proj)] : none;
}

std::vector<LoraGroup> AdapterBatch::groups(int64_t tokens) const {
  std::vector<LoraGroup> out;
  for (auto& layer : calls_)
    for (auto& proj : layer) {
      if (proj.empty()) continue;
      LoraGroup g{&token_segments, tokens, {}};
      for (const LoraCall& c : proj) g.calls.push_back(&c);
      out.push_back(std::move(g));
    }
  if (lm_head_call())
    out.push_back({&lm_head_segments, static_cast<int64_t>(lm_head_segments.empty() ? 0 : lm_head_segments.back().end),
                   {&lm_head_call_}});
  return out;
}

void AdapterBatch::apply_lm_head(Backend& be, const Tensor& selected, Tensor& logits) const {
  if (const LoraCall* call = lm_head_call()) be.lora(selected, lm_head_segments, *call, logits);
}

}  // namespace lorax
