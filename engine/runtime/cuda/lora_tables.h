// The LoRA work of one forward laid out in device memory (kernels::LoraCallArgs):
// for every planned call, one work item per run of up to kLoraRows tokens of a
// segment, carrying that segment's pair (rank 0 where its adapter has none).
// Small batches pad every call's items to the batch's row count, so the launch
// grids, the tables' addresses and the scratch depend only on the batch's shape:
// a recorded decode graph replays with any mix of adapters, the tables being
// rewritten (only when they changed) before each forward.
#pragma once
#include <cuda_runtime.h>

#include <functional>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "runtime/backend.h"

namespace lorax::cuda {

class LoraTables {
 public:
  LoraTables() = default;
  ~LoraTables();
  LoraTables(const LoraTables&) = delete;
  LoraTables& operator=(const LoraTables&) = delete;

  using Scratch = std::function<float*(int64_t floats)>;
  // Lays out `groups` (calls numbered 0..n-1 in order; a call's `id` must be its
  // number) and uploads them on `stream` when they changed; `scratch` gives the
  // shrink partials. True when the tables' device address moved (recordings that
  // read them are stale).
  bool prepare(const std::vector<LoraGroup>& groups, cudaStream_t stream, const Scratch& scratch);
  bool has(int id) const { return id >= 0 && id < static_cast<int>(calls_.size()); }
  // Launch arguments of call `id` reading x and adding into y.
  kernels::LoraCallArgs args(int id, const Tensor& x, Tensor& y) const;
  // What a recording of these launches depends on (shapes, offsets, padding).
  const std::string& graph_key() const { return key_; }

 private:
  struct Call {
    kernels::LoraCallArgs base{};  // x, y and ldy are filled per launch
    size_t first_item = 0;
  };
  std::vector<Call> calls_;
  std::vector<kernels::LoraWorkItem> items_, uploaded_;
  kernels::LoraWorkItem* host_ = nullptr;  // pinned mirror
  void* device_ = nullptr;
  size_t capacity_ = 0;  // items
  std::string key_;
};

}  // namespace lorax::cuda
