// Segmented LoRA for batches that mix adapters (SGMV-style): tokens are grouped
// into contiguous segments, one adapter each, of any rank. Shrink computes
// s = x A^T (rank values per token), expand adds scale * s B^T into the
// projection's output columns. A CTA serves up to kRows tokens of one segment so
// each A/B element it reads serves all of them; shrink splits the input
// dimension across CTAs into partial sums that expand adds up (no atomics, no
// memset). Tokens outside segments are untouched: base-model tokens pay nothing.
#include <stdexcept>
#include <string>

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
struct alignas(16) Vec {
  T v[16 / sizeof(T)];
};

// Loads are unconditional (indices clamped, values masked) and 16 bytes wide so
// the compiler issues them together: with predicated scalar loads it waited for
// each one in turn, which made this kernel latency-bound.
template <typename T>
__global__ void __launch_bounds__(kShrinkWarps * 32) shrink_kernel(LoraSegmentsArgs a) {
  constexpr int V = 16 / sizeof(T);
  constexpr int kVecs = kPerLane / V;  // 16-byte loads per lane and row
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
  int64_t kidx[kVecs];
  float mask[kVecs];
#pragma unroll
  for (int i = 0; i < kVecs; ++i) {
    const int64_t k = k0 + (static_cast<int64_t>(i) * 32 + lane) * V;
    mask[i] = k < a.in ? 1.0f : 0.0f;
    kidx[i] = k < a.in ? k : 0;
  }
  float xv[kRows][kPerLane];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const T* xrow = X + (row0 + (r < rows ? r : 0)) * a.in;
#pragma unroll
    for (int i = 0; i < kVecs; ++i) {
      const Vec<T> w = *reinterpret_cast<const Vec<T>*>(xrow + kidx[i]);
#pragma unroll
      for (int j = 0; j < V; ++j) xv[r][i * V + j] = to_f(w.v[j]) * mask[i];
    }
  }
  for (int rr = warp; rr < rank; rr += kShrinkWarps) {
    const T* arow = A + static_cast<int64_t>(rr) * a.in;
    Vec<T> av[kVecs];
#pragma unroll
    for (int i = 0; i < kVecs; ++i) av[i] = *reinterpret_cast<const Vec<T>*>(arow + kidx[i]);
    float dot[kRows] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int i = 0; i < kVecs; ++i)
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const float w = to_f(av[i].v[j]);
#pragma unroll
        for (int r = 0; r < kRows; ++r) dot[r] += w * xv[r][i * V + j];
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
  extern __shared__ float s[];  // [kRows][rank]: the shrink partial sums, added up
  for (int i = threadIdx.x; i < kRows * rank; i += blockDim.x) {
    const int r = min(i / rank, rows - 1), rr = i % rank;
    float sum = 0.0f;
#pragma unroll 8
    for (int kc = 0; kc < chunks; ++kc) sum += a.partial[(kc * a.T + row0 + r) * a.max_rank + rr];
    s[i] = sum;
  }
  __syncthreads();
  const int64_t o = static_cast<int64_t>(blockIdx.z) * blockDim.x + threadIdx.x;
  if (o >= a.out) return;
  const T* B = static_cast<const T*>(a.b_ptrs[seg]) + o * rank;
  // y values first, then B's row in groups of 8: unconditional loads (clamped
  // indices, masked values) so they are in flight together.
  T* y[kRows];
  float yv[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    y[r] = static_cast<T*>(a.y) + (row0 + min(r, rows - 1)) * a.ldy + a.col_offset + o;
    yv[r] = to_f(*y[r]);
  }
  float sum[kRows] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int r0 = 0; r0 < rank; r0 += 8) {
    float b[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) b[j] = r0 + j < rank ? 1.0f : 0.0f;
#pragma unroll
    for (int j = 0; j < 8; ++j) b[j] *= to_f(B[min(r0 + j, rank - 1)]);
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int r = 0; r < kRows; ++r) sum[r] += b[j] * s[r * rank + min(r0 + j, rank - 1)];
  }
  const float scale = a.scales[seg];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
    if (r < rows) *y[r] = from_f<T>(yv[r] + scale * sum[r]);
}

}  // namespace

int64_t lora_partial_floats(int64_t T, int64_t in, int max_rank) { return k_chunks(in) * T * max_rank; }

void lora_shrink(Dt dt, const LoraSegmentsArgs& a, cudaStream_t s) {
  if (a.num_segments == 0 || a.max_rows == 0) return;
  // 16-byte loads need 16-byte aligned rows of x and A.
  const size_t elem = dt == Dt::F32 ? 4 : 2;
  if ((a.in * elem) % 16 != 0 || reinterpret_cast<uintptr_t>(a.x) % 16 != 0)
    throw std::invalid_argument("lora: input width " + std::to_string(a.in) + " is not a multiple of 16 bytes");
  for (int i = 0; i < a.num_segments; ++i)
    if (reinterpret_cast<uintptr_t>(a.a_ptrs[i]) % 16 != 0) throw std::invalid_argument("lora: unaligned A");
  const unsigned row_tiles = static_cast<unsigned>((a.max_rows + kRows - 1) / kRows);
  dim3 grid(a.num_segments, row_tiles, static_cast<unsigned>(k_chunks(a.in)));
  LORAX_DISPATCH(dt, shrink_kernel<T><<<grid, kShrinkWarps * 32, 0, s>>>(a));
}

void lora_expand(Dt dt, const LoraSegmentsArgs& a, cudaStream_t s) {
  if (a.num_segments == 0 || a.max_rows == 0) return;
  const unsigned row_tiles = static_cast<unsigned>((a.max_rows + kRows - 1) / kRows);
  dim3 grid(a.num_segments, row_tiles, static_cast<unsigned>((a.out + kExpandThreads - 1) / kExpandThreads));
  const size_t smem = static_cast<size_t>(kRows) * a.max_rank * sizeof(float);
  const int chunks = static_cast<int>(k_chunks(a.in));
  LORAX_DISPATCH(dt, expand_kernel<T><<<grid, kExpandThreads, smem, s>>>(a, chunks));
}

}  // namespace lorax::kernels
