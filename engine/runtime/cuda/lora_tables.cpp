#include "runtime/cuda/lora_tables.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "runtime/cuda/cuda_check.h"

namespace lorax::cuda {

namespace {
// Up to this many rows a call's items are padded to the row count (decode-sized
// batches, the ones recorded as graphs); larger batches launch exactly their items.
constexpr int64_t kPaddedRows = 512;

int rank_bucket(int rank) {
  int b = 8;
  while (b < rank) b *= 2;
  return b;
}
}  // namespace

LoraTables::~LoraTables() {
  if (host_) cudaFreeHost(host_);
  if (device_) cudaFree(device_);
}

int LoraTables::task_bound(kernels::Dt dt, int max_rank, int64_t out, int64_t items) {
  const auto key = std::make_tuple(max_rank, out, items);
  auto it = task_bounds_.find(key);
  if (it != task_bounds_.end()) return it->second;
  int64_t most = 0;
  for (int64_t n = 1; n <= items; ++n) {
    const int64_t cols = kernels::lora_expand_cols(dt, max_rank, out, n);
    most = std::max(most, n * ((out + cols - 1) / cols));
  }
  return task_bounds_[key] = static_cast<int>(most);
}

namespace {
std::vector<uintptr_t> made_of(const std::vector<LoraGroup>& groups, size_t expected) {
  std::vector<uintptr_t> out;
  out.reserve(expected);
  for (const LoraGroup& g : groups) {
    out.push_back(static_cast<uintptr_t>(g.rows));
    for (const AdapterSegment& s : *g.segments)
      out.insert(out.end(), {static_cast<uintptr_t>(s.start), static_cast<uintptr_t>(s.end),
                             static_cast<uintptr_t>(s.adapter)});
    for (const LoraCall* c : g.calls) {
      out.push_back(static_cast<uintptr_t>(c->col_offset));
      for (const LoraPair* p : c->pairs) {
        uint32_t scale_bits = 0;
        if (p) std::memcpy(&scale_bits, &p->scale, 4);
        out.insert(out.end(), {reinterpret_cast<uintptr_t>(p ? p->a.data : nullptr),
                               reinterpret_cast<uintptr_t>(p ? p->b.data : nullptr),
                               static_cast<uintptr_t>(p ? p->rank : 0), scale_bits});
      }
    }
  }
  return out;
}
}  // namespace

bool LoraTables::prepare(const std::vector<LoraGroup>& groups, kernels::Dt dt, cudaStream_t stream,
                         const Scratch& scratch) {
  std::vector<uintptr_t> inputs = made_of(groups, made_of_.size());
  if (!calls_.empty() && inputs == made_of_) {
    // Same work as the last forward: only the scratch is taken again (the arena was reset).
    std::vector<float*> partials;
    for (int64_t n : partial_floats_) partials.push_back(scratch(n));
    for (size_t i = 0; i < calls_.size(); ++i) calls_[i].base.partial = partials[partial_of_[i]];
    return false;
  }
  made_of_ = std::move(inputs);
  calls_.clear();
  items_.clear();
  tasks_.clear();
  key_.clear();
  // One partial buffer per position of a call in its group, shared across groups
  // (a projection's calls run together; the next projection waits for them).
  std::vector<int64_t>& partial_floats = partial_floats_;
  std::vector<size_t>& partial_of = partial_of_;
  partial_floats.clear();
  partial_of.clear();
  for (const LoraGroup& g : groups) {
    // The runs of tokens of this group's segments that have an adapter.
    std::vector<std::pair<const AdapterSegment*, int32_t>> runs;
    for (const AdapterSegment& s : *g.segments)
      if (s.adapter >= 0)
        for (int32_t r = s.start; r < s.end; r += kernels::kLoraRows) runs.push_back({&s, r});
    const bool padded = g.rows <= kPaddedRows;
    for (size_t slot = 0; slot < g.calls.size(); ++slot) {
      const LoraCall& c = *g.calls[slot];
      if (c.id != static_cast<int>(calls_.size())) throw std::logic_error("lora: calls must be numbered in order");
      Call call;
      call.first_item = items_.size();
      call.first_task = tasks_.size();
      kernels::LoraCallArgs& a = call.base;
      a.col_offset = c.col_offset;
      a.T = g.rows;
      int max_rank = 0;
      for (const LoraPair* p : c.pairs)
        if (p) {
          a.in = p->a.cols();
          a.out = p->b.rows();
          max_rank = std::max(max_rank, p->rank);
        }
      a.max_rank = rank_bucket(max_rank);
      std::vector<std::pair<const LoraPair*, int32_t>> work;  // (pair, run) of the runs with a pair here
      std::vector<const AdapterSegment*> work_seg;
      for (auto& [seg, row0] : runs) {
        const LoraPair* p = seg->adapter < static_cast<int>(c.pairs.size()) ? c.pairs[seg->adapter] : nullptr;
        if (!p) continue;
        work.push_back({p, row0});
        work_seg.push_back(seg);
      }
      const int64_t max_items = padded ? std::max<int64_t>(g.rows, 1) : static_cast<int64_t>(work.size());
      const int cols = kernels::lora_expand_cols(dt, a.max_rank, a.out, static_cast<int64_t>(work.size()));
      a.max_cols = padded ? kernels::lora_expand_cols(dt, a.max_rank, a.out, 1 << 30) : cols;
      for (size_t i = 0; i < work.size(); ++i) {
        const auto [p, row0] = work[i];
        const auto rows = static_cast<int16_t>(std::min<int32_t>(kernels::kLoraRows, work_seg[i]->end - row0));
        kernels::LoraWorkItem item{};
        item.a = p->a.data;
        item.row0 = row0;
        item.rows = rows;
        item.rank = static_cast<int16_t>(p->rank);
        items_.push_back(item);
        for (int64_t c0 = 0; c0 < a.out; c0 += cols) {
          kernels::LoraExpandTask t{};
          t.b = p->b.data;
          t.row0 = row0;
          t.rows = rows;
          t.rank = static_cast<int16_t>(p->rank);
          t.scale = p->scale;
          t.col0 = static_cast<int32_t>(c0);
          t.ncols = static_cast<int32_t>(std::min<int64_t>(cols, a.out - c0));
          tasks_.push_back(t);
        }
      }
      const int64_t max_tasks =
          padded ? task_bound(dt, a.max_rank, a.out, max_items) : static_cast<int64_t>(tasks_.size() - call.first_task);
      a.max_items = static_cast<int>(max_items);
      a.max_tasks = static_cast<int>(max_tasks);
      items_.resize(call.first_item + max_items, kernels::LoraWorkItem{});
      tasks_.resize(call.first_task + max_tasks, kernels::LoraExpandTask{});
      if (slot >= partial_floats.size()) partial_floats.resize(slot + 1, 0);
      partial_floats[slot] = std::max(partial_floats[slot], kernels::lora_partial_floats(g.rows, a.in, a.max_rank));
      partial_of.push_back(slot);
      key_ += std::to_string(a.in) + "x" + std::to_string(a.out) + "@" + std::to_string(a.col_offset) + "r" +
              std::to_string(a.max_rank) + "n" + std::to_string(max_items) + ";";
      calls_.push_back(call);
    }
  }
  std::vector<float*> partials;
  for (int64_t n : partial_floats) partials.push_back(scratch(n));
  for (size_t i = 0; i < calls_.size(); ++i) calls_[i].base.partial = partials[partial_of[i]];

  const size_t item_bytes = items_.size() * sizeof(kernels::LoraWorkItem);
  const size_t bytes = item_bytes + tasks_.size() * sizeof(kernels::LoraExpandTask);
  bool moved = false;
  if (bytes > capacity_) {
    const size_t cap = std::max(bytes, capacity_ * 2);
    if (host_) CUDA_WARN(cudaFreeHost(host_));
    if (device_) CUDA_WARN(cudaFree(device_));
    host_ = nullptr;
    device_ = nullptr;
    CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&host_), cap));
    CUDA_CHECK(cudaMalloc(&device_, cap));
    capacity_ = cap;
    moved = true;
  }
  auto* dev_items = static_cast<kernels::LoraWorkItem*>(device_);
  auto* dev_tasks = reinterpret_cast<kernels::LoraExpandTask*>(static_cast<uint8_t*>(device_) + item_bytes);
  for (Call& c : calls_) {
    c.base.items = dev_items + c.first_item;
    c.base.tasks = dev_tasks + c.first_task;
  }
  // The previous forward, and its upload, are done (begin_forward synchronized): the mirror is free.
  std::memcpy(host_, items_.data(), item_bytes);
  std::memcpy(host_ + item_bytes, tasks_.data(), bytes - item_bytes);
  CUDA_CHECK(cudaMemcpyAsync(device_, host_, bytes, cudaMemcpyHostToDevice, stream));
  return moved;
}

kernels::LoraCallArgs LoraTables::args(int id, const Tensor& x, Tensor& y) const {
  kernels::LoraCallArgs a = calls_.at(id).base;
  if (x.rows() != a.T || (a.in != 0 && x.cols() != a.in))
    throw std::invalid_argument("lora: input " + shape_string(x.shape) + " does not match the planned call");
  a.x = x.data;
  a.y = y.data;
  a.ldy = y.cols();
  return a;
}

}  // namespace lorax::cuda
