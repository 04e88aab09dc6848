// Segmented LoRA for batches that mix adapters (SGMV-style): tokens are grouped
// into contiguous segments, one adapter each, of any rank. Shrink computes
// s = x A^T (rank values per token), expand adds scale * s B^T into the
// projection's output columns. A CTA serves up to kRows tokens of one segment so
// each A/B element it reads serves all of them; shrink splits the input
// dimension across CTAs into partial sums that expand adds up in a fixed order
// (no atomics, no memset, the same result every run). Tokens outside segments
// are untouched: base-model tokens pay nothing.
//
// At decode sizes (segments of 1-4 tokens, ranks 8-64) a launch moves a few MB,
// about what the GPU can have in flight at once: the time goes to memory
// latency, not bandwidth. So every thread issues all its 16-byte loads before it
// uses any of them, and a CTA costs about one DRAM round trip.
#include <algorithm>
#include <stdexcept>
#include <string>

#include "kernels/common.cuh"

namespace lorax::kernels {
namespace {

constexpr int kRows = kLoraRows;  // tokens per CTA

constexpr int kShrinkWarps = 8;
constexpr int kPerLane = 16;                 // input elements per lane and token
constexpr int kShrinkChunk = 32 * kPerLane;  // input elements per CTA
// Rank rows of A a warp loads together (64 bytes per lane): more would cost the
// registers that let eight warps share an SM and hide each other's latency.
template <typename T>
constexpr int kRankUnroll = sizeof(T) == 4 ? 1 : 2;

constexpr int kExpandThreads = 256;
constexpr int kTileBytes = 32768;  // B staged per expand CTA (eight 16-byte copies per thread)
constexpr int kColsPerThread = 4;  // output columns per expand thread, at most

int64_t k_chunks(int64_t in) { return (in + kShrinkChunk - 1) / kShrinkChunk; }

// Output columns per expand CTA, a multiple of 8 so that each CTA's slice of B
// starts 16-byte aligned whatever the rank: enough CTAs for about two per SM,
// each as large as its B tile allows, since a CTA's time is mostly one memory
// round trip however much it fetches.
int expand_cols(size_t elem, int max_rank, int64_t out, int64_t tiles_per_column) {
  const int64_t fit = std::min<int64_t>(kExpandThreads * kColsPerThread,
                                        static_cast<int64_t>(kTileBytes / elem) / std::max(max_rank, 1));
  const int64_t want = (out * tiles_per_column + 2 * sm_count() - 1) / (2 * sm_count());
  return static_cast<int>(std::max<int64_t>(8, std::min(fit - fit % 8, (want + 7) / 8 * 8)));
}

template <typename T>
__device__ __forceinline__ Vec<T> load16(const T* p) {
  return *reinterpret_cast<const Vec<T>*>(p);
}

// Loads are unconditional (indices clamped, values masked) so the compiler
// issues them together: predicated loads were waited for one by one. x stays in
// its storage type until the A rows are in flight, so its (L2) latency and A's
// (DRAM) latency overlap instead of adding up.
template <typename T>
__global__ void __launch_bounds__(kShrinkWarps * 32) shrink_kernel(LoraCallArgs a) {
  constexpr int V = 16 / sizeof(T);
  constexpr int kVecs = kPerLane / V;  // 16-byte loads per lane and row
  constexpr int U = kRankUnroll<T>;
  static_assert(U * kRows <= 32, "one lane stores each (rank, token) sum");
  const LoraWorkItem item = a.items[blockIdx.x];
  if (item.rank == 0) return;
  const int64_t row0 = item.row0;
  const int rows = item.rows;
  const int64_t kc = blockIdx.y, k0 = kc * kShrinkChunk;
  const int rank = item.rank;
  const T* A = static_cast<const T*>(item.a);
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
  Vec<T> xv[kRows][kVecs];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const T* xrow = X + (row0 + (r < rows ? r : 0)) * a.in;
#pragma unroll
    for (int i = 0; i < kVecs; ++i) xv[r][i] = load16(xrow + kidx[i]);
  }
  // Warp w takes ranks [w*U, w*U + U), then every (kShrinkWarps*U)-th group.
  for (int rr0 = warp * U; rr0 < rank; rr0 += kShrinkWarps * U) {
    Vec<T> av[U][kVecs];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const T* arow = A + static_cast<int64_t>(min(rr0 + u, rank - 1)) * a.in;
#pragma unroll
      for (int i = 0; i < kVecs; ++i) av[u][i] = load16(arow + kidx[i]);
    }
    float dot[U][kRows] = {};
#pragma unroll
    for (int i = 0; i < kVecs; ++i)
#pragma unroll
      for (int j = 0; j < V; ++j) {
        float xf[kRows];
#pragma unroll
        for (int r = 0; r < kRows; ++r) xf[r] = to_f(xv[r][i].v[j]);
#pragma unroll
        for (int u = 0; u < U; ++u) {
          const float w = to_f(av[u][i].v[j]) * mask[i];
#pragma unroll
          for (int r = 0; r < kRows; ++r) dot[u][r] += w * xf[r];
        }
      }
    // After the butterfly every lane holds every sum; lane u*kRows + r stores
    // (rank rr0 + u, token r), so one store instruction serves the group.
    float mine = 0.0f;
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        const float v = warp_sum(dot[u][r]);
        if (lane == u * kRows + r) mine = v;
      }
    const int u = lane / kRows, r = lane % kRows;
    if (lane < U * kRows && rr0 + u < rank && r < rows)
      a.partial[(kc * a.T + row0 + r) * a.max_rank + rr0 + u] = mine;
  }
}


// One CTA: kRows tokens of one segment times `cols` output columns. The B rows
// of those columns are one contiguous slice of B ([out, rank] row-major), which
// the CTA copies to shared memory with cp.async (16 bytes each, no registers
// held, all in flight at once) while it loads the y values it will update and
// the shrink partials.
//
// Launched with launch_pdl: it may start while the kernel before it (the base
// GEMM, or the shrink) finishes; B is a weight no kernel writes, so its copy
// starts at once, and everything else waits at pdl_wait().
template <typename T>
__global__ void __launch_bounds__(kExpandThreads) expand_kernel(LoraCallArgs a, int chunks) {
  constexpr int V = 16 / sizeof(T);
  static_assert(kRows == 4, "s holds the tokens of one rank as a float4");
  extern __shared__ float4 smem[];  // B tile [max_cols][rank], then s, then red
  const LoraExpandTask task = a.tasks[blockIdx.x];
  if (task.rank == 0) return;
  const int64_t row0 = task.row0;
  const int rows = task.rows;
  const int rank = task.rank;
  const int tid = threadIdx.x;
  const int64_t o0 = task.col0;
  const int ncols = task.ncols;
  const T* src = static_cast<const T*>(task.b) + o0 * rank;
  const int len = ncols * rank, nvec = len / V;
  const int tile_vecs = (a.max_cols * a.max_rank + V - 1) / V;
  T* tile = reinterpret_cast<T*>(smem);
  float4* s = smem + tile_vecs;                               // [rank]: the kRows tokens' sums
  float* red = reinterpret_cast<float*>(s + a.max_rank);      // [kExpandThreads]: parts of s

  for (int v = tid; v < nvec; v += kExpandThreads) cp_async16(tile + v * V, src + v * V);
  if (tid < len - nvec * V) tile[nvec * V + tid] = src[nvec * V + tid];  // a last part-vector
  pdl_wait();
  pdl_release();  // what comes next waits for all of this kernel anyway

  T* ybase = static_cast<T*>(a.y) + row0 * a.ldy + a.col_offset + o0;
  float yv[kColsPerThread][kRows];
#pragma unroll
  for (int c = 0; c < kColsPerThread; ++c)
#pragma unroll
    for (int r = 0; r < kRows; ++r)
      yv[c][r] = to_f(ybase[min(r, rows - 1) * a.ldy + min(tid + c * kExpandThreads, ncols - 1)]);

  // s = the shrink partials summed over the input chunks. With few (rank, token)
  // pairs, `ways` threads share a pair, each summing every ways-th chunk, so no
  // thread waits for many loads; their sums are then added in a fixed order.
  const int pairs = kRows * rank, ways = max(1, kExpandThreads / pairs);
  float* sf = reinterpret_cast<float*>(s);
  for (int p = tid % pairs, q = tid / pairs; q < ways && p < pairs; p += kExpandThreads) {
    const int r = min(p % kRows, rows - 1), rr = p / kRows;
    float sum = 0.0f;
#pragma unroll 8
    for (int kc = q; kc < chunks; kc += ways) sum += a.partial[(kc * a.T + row0 + r) * a.max_rank + rr];
    (ways > 1 ? red[q * pairs + p] : sf[p]) = sum;
  }
  cp_async_wait_all();
  __syncthreads();
  if (ways > 1) {
    if (tid < pairs) {
      float sum = 0.0f;
      for (int q = 0; q < ways; ++q) sum += red[q * pairs + tid];
      sf[tid] = sum;
    }
    __syncthreads();
  }

  const float scale = task.scale;
#pragma unroll
  for (int c = 0; c < kColsPerThread; ++c) {
    const int col = tid + c * kExpandThreads;
    if (col >= ncols) break;
    float sum[kRows] = {};
    auto add = [&](float b, int rr) {
      const float4 sv = s[rr];
      sum[0] += b * sv.x;
      sum[1] += b * sv.y;
      sum[2] += b * sv.z;
      sum[3] += b * sv.w;
    };
    if (rank % V == 0) {  // 16-byte reads of the staged row: fewer shared-memory bank conflicts
      for (int rv = 0; rv < rank; rv += V) {
        const Vec<T> w = *reinterpret_cast<const Vec<T>*>(tile + col * rank + rv);
#pragma unroll
        for (int j = 0; j < V; ++j) add(to_f(w.v[j]), rv + j);
      }
    } else {
      for (int rr = 0; rr < rank; ++rr) add(to_f(tile[col * rank + rr]), rr);
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r)
      if (r < rows) ybase[r * a.ldy + col] = from_f<T>(yv[c][r] + scale * sum[r]);
  }
}

}  // namespace

int64_t lora_partial_floats(int64_t T, int64_t in, int max_rank) { return k_chunks(in) * T * max_rank; }

// A and B alignment is the host's promise (256-byte aligned staging); x's rows
// and the rank bound are checked here.
void lora_shrink(Dt dt, const LoraCallArgs& a, cudaStream_t s) {
  if (a.max_items == 0) return;
  const size_t elem = dt == Dt::F32 ? 4 : 2;
  if ((a.in * elem) % 16 != 0 || reinterpret_cast<uintptr_t>(a.x) % 16 != 0)
    throw std::invalid_argument("lora: input width " + std::to_string(a.in) + " is not a multiple of 16 bytes");
  dim3 grid(static_cast<unsigned>(a.max_items), static_cast<unsigned>(k_chunks(a.in)));
  LORAX_DISPATCH(dt, shrink_kernel<T><<<grid, kShrinkWarps * 32, 0, s>>>(a));
}

int lora_expand_cols(Dt dt, int max_rank, int64_t out, int64_t items) {
  return expand_cols(dt == Dt::F32 ? 4 : 2, max_rank, out, std::max<int64_t>(items, 1));
}

void lora_expand(Dt dt, const LoraCallArgs& a, cudaStream_t s) {
  if (a.max_tasks == 0) return;
  const size_t elem = dt == Dt::F32 ? 4 : 2;
  if (a.max_rank > kMaxLoraRank)
    throw std::invalid_argument("lora: rank " + std::to_string(a.max_rank) + " is above the supported " +
                                std::to_string(kMaxLoraRank));
  if (a.max_cols > kExpandThreads * kColsPerThread || a.max_cols % 8 != 0)
    throw std::invalid_argument("lora: expand tasks of " + std::to_string(a.max_cols) + " columns");
  const size_t tile = (static_cast<size_t>(a.max_cols) * a.max_rank * elem + 15) / 16 * 16;
  const size_t smem = tile + a.max_rank * sizeof(float4) + kExpandThreads * sizeof(float);
  const int chunks = static_cast<int>(k_chunks(a.in));
  LORAX_DISPATCH(dt, launch_pdl(expand_kernel<T>, dim3(static_cast<unsigned>(a.max_tasks)), dim3(kExpandThreads), smem,
                                s, a, chunks));
}

}  // namespace lorax::kernels
