// Shared device helpers: storage-type conversion and reductions.
#pragma once
#include <atomic>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "kernels/kernels.h"

namespace lorax::kernels {

template <typename T>
__device__ __forceinline__ float to_f(T v);
template <>
__device__ __forceinline__ float to_f<float>(float v) { return v; }
template <>
__device__ __forceinline__ float to_f<__half>(__half v) { return __half2float(v); }
template <>
__device__ __forceinline__ float to_f<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <>
__device__ __forceinline__ float to_f<__nv_fp8_e4m3>(__nv_fp8_e4m3 v) { return static_cast<float>(v); }

template <typename T>
__device__ __forceinline__ T from_f(float v);
template <>
__device__ __forceinline__ float from_f<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
// Round to nearest even, saturating to +-448 (NaN stays NaN), as the CPU's fp8_e4m3_encode.
template <>
__device__ __forceinline__ __nv_fp8_e4m3 from_f<__nv_fp8_e4m3>(float v) {
  __nv_fp8_e4m3 r;
  r.__x = __nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3);
  return r;
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// E storage-type elements moved as one load or store where their bytes form a
// 4-, 8- or 16-byte word (aligned to at most 16: larger packs are several loads).
template <typename T, int E>
struct alignas(E * sizeof(T) >= 16 ? 16 : E * sizeof(T) >= 8 ? 8 : E * sizeof(T) >= 4 ? 4 : sizeof(T)) Pack {
  T v[E];
};
// 16 bytes of storage-type elements: one vector load or store.
template <typename T>
using Vec = Pack<T, 16 / sizeof(T)>;

// Word i (elements 2i and 2i + 1) of a pack of 16-bit elements.
template <typename T, int E>
__device__ __forceinline__ uint32_t word(const Pack<T, E>& p, int i) {
  static_assert(sizeof(T) == 2, "pairs of 16-bit elements");
  uint32_t w;
  memcpy(&w, &p.v[2 * i], 4);
  return w;
}

// Two e4m3 codes (the first in the low byte) as two T values in one word; exact,
// as every e4m3 value is a half and a bfloat16 (NaN codes stay NaN). One cvt to
// half; bfloat16 takes three more (two floats, then the pair). A bit-moving version
// (sign, exponent and mantissa shifted into place, one power-of-two multiply) was
// also exact but slower in decode attention: 5 instructions a pair against 4.
template <typename T>
__device__ __forceinline__ uint32_t fp8x2_to(uint16_t pair) {
  const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(pair, __NV_E4M3);
  if constexpr (std::is_same_v<T, __half>) {
    return static_cast<uint32_t>(h.x) | static_cast<uint32_t>(h.y) << 16;
  } else {
    const float2 f = __half22float2(__half2(h));
    const __nv_bfloat162 b = __floats2bfloat162_rn(f.x, f.y);
    uint32_t w;
    memcpy(&w, &b, 4);
    return w;
  }
}

// E cache elements as E storage-type values: the same pack, or an FP8 cache's
// codes converted.
template <typename T, typename C, int E>
__device__ __forceinline__ Pack<T, E> to_storage(const Pack<C, E>& raw) {
  if constexpr (std::is_same_v<C, T>) {
    return raw;
  } else {
    Pack<T, E> out;
#pragma unroll
    for (int i = 0; i < E / 2; ++i) {
      const uint32_t w = fp8x2_to<T>(static_cast<uint16_t>(raw.v[2 * i].__x | raw.v[2 * i + 1].__x << 8));
      memcpy(&out.v[2 * i], &w, 4);
    }
    return out;
  }
}

// E cache elements at p as E storage-type values: a plain load, or an FP8
// cache's codes converted (half the bytes moved).
template <typename T, typename C, int E>
__device__ __forceinline__ Pack<T, E> load_as(const C* p) {
  return to_storage<T, C, E>(*reinterpret_cast<const Pack<C, E>*>(p));
}

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Asynchronous global -> shared copies (sm_80+): 16 bytes each, no registers
// held while they fly.
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void cp_async16(void* dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(dst)), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>  // wait until at most N committed groups are still in flight
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }

// Streaming multiprocessors of the current device (sizes grids to fill it).
inline int sm_count() {
  static const int n = [] {
    int dev = 0, sms = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    return sms > 0 ? sms : 132;
  }();
  return n;
}

// Sum over a block of up to 1024 threads; `scratch` holds 32 floats.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int warps = (blockDim.x + 31) >> 5;
  v = threadIdx.x < warps ? scratch[threadIdx.x] : 0.0f;
  if (warp == 0) v = warp_sum(v);
  if (threadIdx.x == 0) scratch[0] = v;
  __syncthreads();
  return scratch[0];
}

// Calls f.template operator()<T>() with the storage type of `dt`.
#define LORAX_DISPATCH(dt, ...)                                  \
  do {                                                           \
    switch (dt) {                                                \
      case Dt::F32: { using T = float; __VA_ARGS__; } break;     \
      case Dt::F16: { using T = __half; __VA_ARGS__; } break;    \
      case Dt::BF16: { using T = __nv_bfloat16; __VA_ARGS__; } break; \
    }                                                            \
  } while (0)

// Cache slot of context position p through a sequence's block table (every
// attention kernel). A shift for power-of-two block sizes was tried: it cost the
// tensor-core decode kernel registers and spills and was slower at batch 64.
__device__ __forceinline__ int64_t paged_slot(const int32_t* table, int p, int block_size) {
  return static_cast<int64_t>(table[p / block_size]) * block_size + p % block_size;
}

inline unsigned blocks_for(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

// Programmatic dependent launch (PDL). A kernel started with launch_pdl may be
// scheduled while the kernel before it in the stream is still running, which
// hides the launch gap between the many small kernels of a decode step. Such a
// kernel must call pdl_wait() before it touches memory the previous kernel
// writes or reads (it may only prefetch what no kernel writes, like weights),
// and calls pdl_release() to let the next kernel be scheduled. Both are no-ops
// in kernels launched the ordinary way.
__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;\n" ::: "memory"); }
__device__ __forceinline__ void pdl_release() { asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory"); }

extern std::atomic<bool> programmatic_launch;  // set_programmatic_launch (kernels.h)

template <typename... Params, typename... Args>
void launch_pdl(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, Args... args) {
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cfg.attrs = &attr;
  cfg.numAttrs = programmatic_launch.load(std::memory_order_relaxed) ? 1 : 0;
  // A failed launch stays visible to the caller's cudaGetLastError check.
  (void)cudaLaunchKernelEx(&cfg, kernel, static_cast<Params>(args)...);
}

}  // namespace lorax::kernels
