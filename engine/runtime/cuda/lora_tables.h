// The LoRA work of one forward laid out in device memory (kernels::LoraCallArgs):
// for every planned call, the shrink's items (a run of up to kLoraRows tokens of
// a segment with an A) and the expand's tasks (each item times a range of output
// columns, as wide as keeps about two CTAs per SM for that many items). Small
// batches pad both lists to bounds that depend only on the batch's shape (items:
// its rows; tasks: the most any item count up to that gives), so the launch grids,
// the tables' addresses and the scratch do too: a recorded decode graph replays
// with any mix of adapters, the tables rewritten (only when they changed) before
// each forward.
#pragma once
#include <cuda_runtime.h>

#include <functional>
#include <map>
#include <tuple>
#include <cstdint>
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
  bool prepare(const std::vector<LoraGroup>& groups, kernels::Dt dt, cudaStream_t stream, const Scratch& scratch);
  bool has(int id) const { return id >= 0 && id < static_cast<int>(calls_.size()); }
  // Launch arguments of call `id` reading x and adding into y.
  kernels::LoraCallArgs args(int id, const Tensor& x, Tensor& y) const;
  // What a recording of these launches depends on (shapes, offsets, padding).
  const std::string& graph_key() const { return key_; }

 private:
  struct Call {
    kernels::LoraCallArgs base{};  // x, y and ldy are filled per launch
    size_t first_item = 0, first_task = 0;
  };
  // The most tasks any count of items up to `items` makes (a padded call's bound).
  int task_bound(kernels::Dt dt, int max_rank, int64_t out, int64_t items);
  std::vector<Call> calls_;
  // Items and tasks are both 32-byte records, kept in one upload: items first.
  std::vector<kernels::LoraWorkItem> items_;
  std::vector<kernels::LoraExpandTask> tasks_;
  // What the last layout was made of (segments, pairs): a decode step of the same
  // requests as the last one reuses the tables as they are.
  std::vector<uintptr_t> made_of_;
  std::vector<int64_t> partial_floats_;
  std::vector<size_t> partial_of_;  // call -> position in its group (its partial buffer)
  uint8_t* host_ = nullptr;  // pinned mirror
  void* device_ = nullptr;
  size_t capacity_ = 0;  // bytes
  std::map<std::tuple<int, int64_t, int64_t>, int> task_bounds_;
  std::string key_;
};

}  // namespace lorax::cuda
