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

bool LoraTables::prepare(const std::vector<LoraGroup>& groups, cudaStream_t stream, const Scratch& scratch) {
  calls_.clear();
  items_.clear();
  key_.clear();
  // One partial buffer per position of a call in its group, shared across groups
  // (a projection's calls run together; the next projection waits for them).
  std::vector<int64_t> partial_floats;
  std::vector<size_t> partial_of;  // call -> its position
  for (const LoraGroup& g : groups) {
    // The runs of tokens of this group's segments that have an adapter.
    std::vector<std::pair<const AdapterSegment*, int32_t>> runs;
    for (const AdapterSegment& s : *g.segments)
      if (s.adapter >= 0)
        for (int32_t r = s.start; r < s.end; r += kernels::kLoraRows) runs.push_back({&s, r});
    const int64_t bound = g.rows <= kPaddedRows ? std::max<int64_t>(g.rows, 1) : static_cast<int64_t>(runs.size());
    for (size_t slot = 0; slot < g.calls.size(); ++slot) {
      const LoraCall& c = *g.calls[slot];
      if (c.id != static_cast<int>(calls_.size())) throw std::logic_error("lora: calls must be numbered in order");
      Call call;
      call.first_item = items_.size();
      kernels::LoraCallArgs& a = call.base;
      a.col_offset = c.col_offset;
      a.T = g.rows;
      a.max_items = static_cast<int>(bound);
      int max_rank = 0;
      for (const LoraPair* p : c.pairs)
        if (p) {
          a.in = p->a.cols();
          a.out = p->b.rows();
          max_rank = std::max(max_rank, p->rank);
        }
      a.max_rank = rank_bucket(max_rank);
      for (auto& [seg, row0] : runs) {
        kernels::LoraWorkItem item{};
        const LoraPair* p = seg->adapter < static_cast<int>(c.pairs.size()) ? c.pairs[seg->adapter] : nullptr;
        if (p) {
          item.a = p->a.data;
          item.b = p->b.data;
          item.rank = static_cast<int16_t>(p->rank);
          item.scale = p->scale;
        }
        item.row0 = row0;
        item.rows = static_cast<int16_t>(std::min<int32_t>(kernels::kLoraRows, seg->end - row0));
        items_.push_back(item);
      }
      items_.resize(call.first_item + bound, kernels::LoraWorkItem{});
      if (slot >= partial_floats.size()) partial_floats.resize(slot + 1, 0);
      partial_floats[slot] = std::max(partial_floats[slot], kernels::lora_partial_floats(g.rows, a.in, a.max_rank));
      partial_of.push_back(slot);
      key_ += std::to_string(a.in) + "x" + std::to_string(a.out) + "@" + std::to_string(a.col_offset) + "r" +
              std::to_string(a.max_rank) + "n" + std::to_string(bound) + ";";
      calls_.push_back(call);
    }
  }
  std::vector<float*> partials;
  for (int64_t n : partial_floats) partials.push_back(scratch(n));
  for (size_t i = 0; i < calls_.size(); ++i) calls_[i].base.partial = partials[partial_of[i]];

  bool moved = false;
  if (items_.size() > capacity_) {
    const size_t cap = std::max(items_.size(), capacity_ * 2);
    if (host_) cudaFreeHost(host_);
    if (device_) cudaFree(device_);
    host_ = nullptr;
    device_ = nullptr;
    CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&host_), cap * sizeof(kernels::LoraWorkItem)));
    CUDA_CHECK(cudaMalloc(&device_, cap * sizeof(kernels::LoraWorkItem)));
    capacity_ = cap;
    uploaded_.clear();
    moved = true;
  }
  auto* dev = static_cast<kernels::LoraWorkItem*>(device_);
  for (Call& c : calls_) c.base.items = dev + c.first_item;
  const size_t bytes = items_.size() * sizeof(kernels::LoraWorkItem);
  // Consecutive decode steps of the same requests lay out the same items: no upload.
  if (uploaded_.size() != items_.size() || std::memcmp(uploaded_.data(), items_.data(), bytes) != 0) {
    std::memcpy(host_, items_.data(), bytes);  // the previous forward, and its upload, are done (begin_forward)
    CUDA_CHECK(cudaMemcpyAsync(device_, host_, bytes, cudaMemcpyHostToDevice, stream));
    uploaded_ = items_;
  }
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
