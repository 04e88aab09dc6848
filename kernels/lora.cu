// Segmented LoRA for batches that mix adapters (SGMV-style): tokens are grouped
// into contiguous segments, one adapter each, of any rank. Shrink computes
// s = x A^T (rank values per token), expand adds scale * s B^T into the
// projection's output columns. Tokens outside segments are not touched, so
// base-model tokens pay nothing.
#include "kernels/common.cuh"

namespace lorax::kernels {
namespace {

constexpr int kShrinkWarps = 4;

template <typename T>
__global__ void shrink_kernel(LoraSegmentsArgs a) {
  const int seg = blockIdx.x;
  const int64_t row = a.seg_start[seg] + blockIdx.y;
  if (row >= a.seg_end[seg]) return;
  const int rank = a.ranks[seg];
  const T* A = static_cast<const T*>(a.a_ptrs[seg]);
  const T* x = static_cast<const T*>(a.x) + row * a.in;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int r = warp; r < rank; r += kShrinkWarps) {
    const T* arow = A + static_cast<int64_t>(r) * a.in;
    float dot = 0.0f;
    for (int64_t i = lane; i < a.in; i += 32) dot += to_f(x[i]) * to_f(arow[i]);
    dot = warp_sum(dot);
    if (lane == 0) a.shrink_buf[row * a.max_rank + r] = dot;
  }
}

template <typename T>
__global__ void expand_kernel(LoraSegmentsArgs a) {
  const int seg = blockIdx.x;
  const int64_t row = a.seg_start[seg] + blockIdx.y;
  if (row >= a.seg_end[seg]) return;
  const int64_t o = static_cast<int64_t>(blockIdx.z) * blockDim.x + threadIdx.x;
  if (o >= a.out) return;
  const int rank = a.ranks[seg];
  const T* B = static_cast<const T*>(a.b_ptrs[seg]) + o * rank;
  const float* s = a.shrink_buf + row * a.max_rank;
  float sum = 0.0f;
  for (int r = 0; r < rank; ++r) sum += s[r] * to_f(B[r]);
  T* y = static_cast<T*>(a.y) + row * a.ldy + a.col_offset + o;
  *y = from_f<T>(to_f(*y) + a.scales[seg] * sum);
}

}  // namespace

void lora_segments(Dt dt, const LoraSegmentsArgs& a, cudaStream_t s) {
  if (a.num_segments == 0 || a.max_rows == 0) return;
  dim3 shrink_grid(a.num_segments, a.max_rows);
  dim3 expand_grid(a.num_segments, a.max_rows, static_cast<unsigned>((a.out + 255) / 256));
  LORAX_DISPATCH(dt, {
    shrink_kernel<T><<<shrink_grid, kShrinkWarps * 32, 0, s>>>(a);
    expand_kernel<T><<<expand_grid, 256, 0, s>>>(a);
  });
}

}  // namespace lorax::kernels
