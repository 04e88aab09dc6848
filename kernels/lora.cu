// Segmented LoRA for batches that mix adapters (SGMV-style): tokens are grouped
// into contiguous segments, one adapter each, of any rank. Shrink computes
// s = x A^T (rank values per token), expand adds scale * s B^T into the
// projection's output columns. A CTA serves up to kRows tokens of one segment so
// each A/B element it reads serves all of them; shrink splits the input
// dimension across CTAs into partial sums that expand adds up (no atomics, no
// memset). Tokens outside segments are untouched: base-model tokens pay nothing.
#include "kernels/common.cuh"

namespace lorax::kernels {
namespace {

constexpr int kRows = 4;         // tokens per CTA
constexpr int kShrinkWarps = 4;  // each warp takes every 4th rank
constexpr int kPerLane = 16;
constexpr int kShrinkChunk = 32 * kPerLane;  // input elements per CTA
constexpr int kExpandThreads = 256;

int64_t k_chunks(int64_t in) { return (in + kShrinkChunk - 1) / kShrinkChunk; }

template <typename T>
__global__ void __launch_bounds__(kShrinkWarps * 32) shrink_kernel(LoraSegmentsArgs a) {
  const int seg = blockIdx.x;
  const int64_t row0 = a.seg_start[seg] + static_cast<int64_t>(blockIdx.y) * kRows;
  const int64_t seg_end = a.seg_end[seg];
  if (row0 >= seg_end) return;
  const int rows = static_cast<int>(seg_end - row0 < kRows ? seg_end - row0 : kRows);
  const int64_t kc = blockIdx.z, k0 = kc * kShrinkChunk;
  const int rank = a.ranks[seg];
  const T* A = static_cast<const T*>(a.a_ptrs[seg]);
  const T* X = static_cast<const T*>(a.x);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float xv[kRows][kPerLane];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int e = 0; e < kPerLane; ++e) {
      const int64_t k = k0 + e * 32 + lane;
      xv[r][e] = (r < rows && k < a.in) ? to_f(X[(row0 + r) * a.in + k]) : 0.0f;
    }
  for (int rr = warp; rr < rank; rr += kShrinkWarps) {
    const T* arow = A + static_cast<int64_t>(rr) * a.in;
    float dot[kRows] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int e = 0; e < kPerLane; ++e) {
      const int64_t k = k0 + e * 32 + lane;
      const float av = k < a.in ? to_f(arow[k]) : 0.0f;
#pragma unroll
      for (int r = 0; r < kRows; ++r) dot[r] += av * xv[r][e];
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const float v = warp_sum(dot[r]);
      if (lane == 0 && r < rows) a.partial[(kc * a.T + row0 + r) * a.max_rank + rr] = v;
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kExpandThreads) expand_kernel(LoraSegmentsArgs a, int chunks) {
  const int seg = blockIdx.x;
  const int64_t row0 = a.seg_start[seg] + static_cast<int64_t>(blockIdx.y) * kRows;
  const int64_t seg_end = a.seg_end[seg];
  if (row0 >= seg_end) return;
  const int rows = static_cast<int>(seg_end - row0 < kRows ? seg_end - row0 : kRows);
  const int rank = a.ranks[seg];
  extern __shared__ float s[];  // [kRows][rank]
  for (int i = threadIdx.x; i < kRows * rank; i += blockDim.x) {
    const int r = i / rank, rr = i % rank;
    float sum = 0.0f;
    if (r < rows)
      for (int kc = 0; kc < chunks; ++kc) sum += a.partial[(kc * a.T + row0 + r) * a.max_rank + rr];
    s[i] = sum;
  }
  __syncthreads();
  const int64_t o = static_cast<int64_t>(blockIdx.z) * blockDim.x + threadIdx.x;
  if (o >= a.out) return;
  const T* B = static_cast<const T*>(a.b_ptrs[seg]) + o * rank;
  float sum[kRows] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int rr = 0; rr < rank; ++rr) {
    const float b = to_f(B[rr]);
#pragma unroll
    for (int r = 0; r < kRows; ++r) sum[r] += b * s[r * rank + rr];
  }
  const float scale = a.scales[seg];
  for (int r = 0; r < rows; ++r) {
    T* y = static_cast<T*>(a.y) + (row0 + r) * a.ldy + a.col_offset + o;
    *y = from_f<T>(to_f(*y) + scale * sum[r]);
  }
}

}  // namespace

int64_t lora_partial_floats(int64_t T, int64_t in, int max_rank) { return k_chunks(in) * T * max_rank; }

void lora_segments(Dt dt, const LoraSegmentsArgs& a, cudaStream_t s) {
  if (a.num_segments == 0 || a.max_rows == 0) return;
  const unsigned row_tiles = static_cast<unsigned>((a.max_rows + kRows - 1) / kRows);
  const int chunks = static_cast<int>(k_chunks(a.in));
  dim3 shrink_grid(a.num_segments, row_tiles, static_cast<unsigned>(chunks));
  dim3 expand_grid(a.num_segments, row_tiles, static_cast<unsigned>((a.out + kExpandThreads - 1) / kExpandThreads));
  const size_t expand_smem = static_cast<size_t>(kRows) * a.max_rank * sizeof(float);
  LORAX_DISPATCH(dt, {
    shrink_kernel<T><<<shrink_grid, kShrinkWarps * 32, 0, s>>>(a);
    expand_kernel<T><<<expand_grid, kExpandThreads, expand_smem, s>>>(a, chunks);
  });
}

}  // namespace lorax::kernels
