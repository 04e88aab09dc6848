// Matrix-vector product for single-sequence decode: y = x W^T (+ bias), x one
// row. Purely bandwidth-bound on W, so each warp streams one weight row with
// 16-byte loads, many in flight per lane (unrolled), while x is read through
// the L1 cache that all warps of a block share.
#include "kernels/common.cuh"

namespace lorax::kernels {
namespace {

constexpr int kWarps = 8;

template <typename T>
__global__ void __launch_bounds__(kWarps * 32) gemv_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                                           const T* __restrict__ bias, T* __restrict__ y, int K, int N) {
  constexpr int V = 16 / sizeof(T);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int o = blockIdx.x * kWarps + warp;
  if (o >= N) return;
  const Vec<T>* wrow = reinterpret_cast<const Vec<T>*>(w + static_cast<int64_t>(o) * K);
  const Vec<T>* xv = reinterpret_cast<const Vec<T>*>(x);
  const int vecs = K / V;
  // The weights depend on no kernel: start streaming the row while the
  // previous kernel (which produces x) is still finishing.
  constexpr int kEarly = 4;
  Vec<T> early[kEarly];
#pragma unroll
  for (int p = 0; p < kEarly; ++p) early[p] = wrow[min(lane + p * 32, vecs - 1)];
  pdl_wait();
  pdl_release();
  float acc = 0.0f;
#pragma unroll
  for (int p = 0; p < kEarly; ++p) {
    if (lane + p * 32 >= vecs) break;
    const Vec<T> xx = xv[lane + p * 32];
#pragma unroll
    for (int e = 0; e < V; ++e) acc += to_f(early[p].v[e]) * to_f(xx.v[e]);
  }
#pragma unroll 8
  for (int i = lane + kEarly * 32; i < vecs; i += 32) {
    const Vec<T> wv = wrow[i];
    const Vec<T> xx = xv[i];
#pragma unroll
    for (int e = 0; e < V; ++e) acc += to_f(wv.v[e]) * to_f(xx.v[e]);
  }
  acc = warp_sum(acc);
  if (lane == 0) y[o] = from_f<T>(acc + (bias ? to_f(bias[o]) : 0.0f));
}

}  // namespace

bool gemv(Dt dt, const void* x, const void* w, const void* bias, void* y, int rows, int K, int N, int64_t ldy,
          cudaStream_t s) {
  (void)ldy;
  const size_t vec_bytes = 16;
  const size_t elem = dt == Dt::F32 ? 4 : 2;
  // One row, 16-byte aligned rows only; anything else goes to cuBLASLt.
  if (rows != 1 || (K * elem) % vec_bytes != 0 || reinterpret_cast<uintptr_t>(w) % vec_bytes != 0 ||
      reinterpret_cast<uintptr_t>(x) % vec_bytes != 0)
    return false;
  const dim3 grid((N + kWarps - 1) / kWarps);
  LORAX_DISPATCH(dt, launch_pdl(gemv_kernel<T>, grid, kWarps * 32, 0, s, static_cast<const T*>(x),
                                static_cast<const T*>(w), static_cast<const T*>(bias), static_cast<T*>(y), K, N));
  return true;
}

}  // namespace lorax::kernels
