// Embedding gather, norms (with fused residual add), RoPE, KV write,
// activations and small row ops.
#include <stdexcept>
#include <string>

#include "kernels/common.cuh"

namespace lorax::kernels {
namespace {

template <typename T>
__global__ void embed_kernel(const T* table, const T* pos_table, const int32_t* ids, const int32_t* pos, float mult,
                             int64_t H, T* out) {
  const int64_t t = blockIdx.x;
  const T* src = table + static_cast<int64_t>(ids[t]) * H;
  const T* psrc = pos_table ? pos_table + static_cast<int64_t>(pos[t]) * H : nullptr;
  for (int64_t i = threadIdx.x; i < H; i += blockDim.x) {
    float v = to_f(src[i]) * mult;
    if (psrc) v += to_f(psrc[i]);
    out[t * H + i] = from_f<T>(v);
  }
}

// One block per row; statistics in fp32; each thread keeps its PER elements
// in registers so the row is read once. Loads are unconditional (clamped index,
// masked value) so they are in flight together. With `residual`, x += residual
// first (the sum is written back to x, which carries the residual stream).
template <typename T, int PER>
__global__ void __launch_bounds__(1024) norm_kernel(T* x, const T* residual, const T* w, const T* b, int kind,
                                                    float eps, bool one_plus, int64_t H, T* y) {
  pdl_wait();
  pdl_release();
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  T* xr = x + row * H;
  float vals[PER], wv[PER], bv[PER];
#pragma unroll
  for (int j = 0; j < PER; ++j) {
    const int64_t i = min(threadIdx.x + static_cast<int64_t>(j) * blockDim.x, H - 1);
    vals[j] = to_f(xr[i]) + (residual ? to_f(residual[row * H + i]) : 0.0f);
    wv[j] = to_f(w[i]);  // weights now too: one memory round trip for everything
    bv[j] = b ? to_f(b[i]) : 0.0f;
  }
  float sum = 0.0f;
#pragma unroll
  for (int j = 0; j < PER; ++j) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(j) * blockDim.x;
    if (residual) {
      const T stored = from_f<T>(vals[j]);
      if (i < H) xr[i] = stored;
      vals[j] = to_f(stored);  // normalise exactly what the residual stream holds
    }
    vals[j] = i < H ? vals[j] : 0.0f;
    sum += vals[j];
  }
  float mean = 0.0f;
  if (kind == 0) mean = block_sum(sum, scratch) / H;
  float sq = 0.0f;
#pragma unroll
  for (int j = 0; j < PER; ++j) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(j) * blockDim.x;
    if (i < H) sq += (vals[j] - mean) * (vals[j] - mean);
  }
  const float inv = rsqrtf(block_sum(sq, scratch) / H + eps);
#pragma unroll
  for (int j = 0; j < PER; ++j) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(j) * blockDim.x;
    const float v = (vals[j] - mean) * inv * (one_plus ? 1.0f + wv[j] : wv[j]) + bv[j];
    if (i < H) y[row * H + i] = from_f<T>(v);
  }
}

template <typename T>
__global__ void rope_kernel(T* qkv, const int32_t* pos, const float* inv_freq, int64_t width, int heads, int head_dim,
                            int rotary_dim) {
  const int64_t t = blockIdx.x;
  const int half = rotary_dim / 2;
  const float p = static_cast<float>(pos[t]);
  for (int idx = threadIdx.x; idx < heads * half; idx += blockDim.x) {
    const int h = idx / half, i = idx % half;
    float sn, cs;
    sincosf(p * inv_freq[i], &sn, &cs);
    T* v = qkv + t * width + static_cast<int64_t>(h) * head_dim;
    const float x1 = to_f(v[i]), x2 = to_f(v[i + half]);
    v[i] = from_f<T>(x1 * cs - x2 * sn);
    v[i + half] = from_f<T>(x2 * cs + x1 * sn);
  }
}

// One block per (token, head): rotates the head (q or k) in registers and, for
// k heads, writes the rotated k and the matching v head into the cache slot.
template <typename T>
__global__ void rope_kv_write_kernel(T* qkv, const int32_t* pos, const float* inv_freq, const int32_t* slots,
                                     int64_t width, int q_heads, int kv_heads, int head_dim, int rotary_dim, T* k,
                                     T* v) {
  pdl_wait();
  pdl_release();
  const int64_t t = blockIdx.x;
  const int h = blockIdx.y;
  T* hv = qkv + t * width + static_cast<int64_t>(h) * head_dim;
  const bool is_k = h >= q_heads;
  const int64_t kv_row = static_cast<int64_t>(kv_heads) * head_dim;
  const int64_t dst = is_k ? slots[t] * kv_row + static_cast<int64_t>(h - q_heads) * head_dim : 0;
  const int half = inv_freq ? rotary_dim / 2 : 0;
  const float p = static_cast<float>(pos[t]);
  // Rotated pairs (i, i + half), then the unrotated tail, each element once.
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    float sn, cs;
    sincosf(p * inv_freq[i], &sn, &cs);
    const float x1 = to_f(hv[i]), x2 = to_f(hv[i + half]);
    const T r1 = from_f<T>(x1 * cs - x2 * sn), r2 = from_f<T>(x2 * cs + x1 * sn);
    hv[i] = r1;
    hv[i + half] = r2;
    if (is_k) {
      k[dst + i] = r1;
      k[dst + i + half] = r2;
    }
  }
  if (!is_k) return;
  for (int i = 2 * half + threadIdx.x; i < head_dim; i += blockDim.x) k[dst + i] = hv[i];
  const T* vsrc = hv + kv_row;  // the v head sits kv_heads heads after its k head
  for (int i = threadIdx.x; i < head_dim; i += blockDim.x) v[dst + i] = vsrc[i];
}

__device__ __forceinline__ float act_f(float x, int act) {
  switch (act) {
    case 0: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case 1: return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    case 2: return x / (1.0f + __expf(-x));
    default: return x > 0.0f ? x : 0.0f;
  }
}

template <typename T>
__global__ void activation_kernel(T* x, int64_t n, int act) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] = from_f<T>(act_f(to_f(x[i]), act));
}

template <typename T>
__global__ void gated_kernel(const T* gu, int64_t rows, int64_t n, int act, T* out) {
  pdl_wait();
  pdl_release();
  const int64_t total = rows * n;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / n, c = i % n;
    const T* row = gu + r * 2 * n;
    out[i] = from_f<T>(act_f(to_f(row[c]), act) * to_f(row[n + c]));
  }
}

template <typename T>
__global__ void add_kernel(T* y, const T* x, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] = from_f<T>(to_f(y[i]) + to_f(x[i]));
}

template <typename T>
__global__ void softcap_kernel(T* x, int64_t n, float cap) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] = from_f<T>(cap * tanhf(to_f(x[i]) / cap));
}

template <typename T>
__global__ void gather_kernel(const T* x, const int32_t* rows, int64_t H, T* out) {
  const int64_t r = blockIdx.x;
  const T* src = x + static_cast<int64_t>(rows[r]) * H;
  for (int64_t i = threadIdx.x; i < H; i += blockDim.x) out[r * H + i] = src[i];
}

template <typename T>
__global__ void add_bias_kernel(T* y, const T* b, int64_t rows, int64_t n) {
  const int64_t total = rows * n;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total; i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] = from_f<T>(to_f(y[i]) + to_f(b[i % n]));
}

template <typename T>
__global__ void to_float_kernel(const T* x, int64_t n, float* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = to_f(x[i]);
}

template <typename T>
__global__ void from_float_kernel(const float* x, int64_t n, T* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = from_f<T>(x[i]);
}

__device__ __forceinline__ uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

template <typename T>
__global__ void fill_random_kernel(T* x, int64_t n, uint64_t seed, float stddev) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint64_t r = mix64(seed ^ mix64(static_cast<uint64_t>(i)));
    const float u1 = (static_cast<float>(r >> 40) + 1.0f) / 16777217.0f;
    const float u2 = static_cast<float>((r >> 16) & 0xffffff) / 16777216.0f;
    x[i] = from_f<T>(stddev * sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2));
  }
}

template <typename T>
__global__ void fill_kernel(T* x, int64_t n, float v) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] = from_f<T>(v);
}

unsigned grid_for(int64_t n) {
  int64_t b = (n + 255) / 256;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 * 4 ? 65535 * 4 : b));
}

}  // namespace

void embed(Dt dt, const void* table, const void* pos_table, const int32_t* ids, const int32_t* pos, float mult,
           int64_t n_tok, int64_t H, void* out, cudaStream_t s) {
  if (n_tok == 0) return;
  LORAX_DISPATCH(dt, embed_kernel<T><<<n_tok, 1024, 0, s>>>(static_cast<const T*>(table), static_cast<const T*>(pos_table),
                                                       ids, pos, mult, H, static_cast<T*>(out)));
}

void norm(Dt dt, void* x, const void* residual, const void* w, const void* b, int kind, float eps, bool one_plus,
          int64_t rows, int64_t H, void* y, cudaStream_t s) {
  if (rows == 0) return;
  const int threads = H >= 1024 ? 1024 : ((H + 31) / 32) * 32;
  if (H > static_cast<int64_t>(threads) * 16)
    throw std::invalid_argument("norm: hidden size " + std::to_string(H) + " exceeds the supported " +
                                std::to_string(threads * 16));
  LORAX_DISPATCH(dt, {
    auto* xp = static_cast<T*>(x);
    auto* rp = static_cast<const T*>(residual);
    auto* wp = static_cast<const T*>(w);
    auto* bp = static_cast<const T*>(b);
    if (H <= static_cast<int64_t>(threads) * 4) {
      launch_pdl(norm_kernel<T, 4>, static_cast<unsigned>(rows), threads, 0, s, xp, rp, wp, bp, kind, eps, one_plus, H,
                 static_cast<T*>(y));
    } else if (H <= static_cast<int64_t>(threads) * 8) {
      launch_pdl(norm_kernel<T, 8>, static_cast<unsigned>(rows), threads, 0, s, xp, rp, wp, bp, kind, eps, one_plus, H,
                 static_cast<T*>(y));
    } else {
      launch_pdl(norm_kernel<T, 16>, static_cast<unsigned>(rows), threads, 0, s, xp, rp, wp, bp, kind, eps, one_plus, H,
                 static_cast<T*>(y));
    }
  });
}

void rope(Dt dt, void* qkv, const int32_t* pos, const float* inv_freq, int64_t n_tok, int64_t width, int heads,
          int head_dim, int rotary_dim, cudaStream_t s) {
  if (n_tok == 0) return;
  LORAX_DISPATCH(dt, rope_kernel<T><<<n_tok, 256, 0, s>>>(static_cast<T*>(qkv), pos, inv_freq, width, heads, head_dim,
                                                      rotary_dim));
}

void rope_kv_write(Dt dt, void* qkv, const int32_t* pos, const float* inv_freq, const int32_t* slots, int64_t n_tok,
                   int64_t width, int q_heads, int kv_heads, int head_dim, int rotary_dim, void* k_cache,
                   void* v_cache, cudaStream_t s) {
  if (n_tok == 0) return;
  const dim3 grid(static_cast<unsigned>(n_tok), static_cast<unsigned>(q_heads + kv_heads));
  LORAX_DISPATCH(dt, launch_pdl(rope_kv_write_kernel<T>, grid, 64, 0, s, static_cast<T*>(qkv), pos, inv_freq, slots,
                                width, q_heads, kv_heads, head_dim, rotary_dim, static_cast<T*>(k_cache),
                                static_cast<T*>(v_cache)));
}

void activation(Dt dt, void* x, int64_t n, int act, cudaStream_t s) {
  if (n == 0) return;
  LORAX_DISPATCH(dt, activation_kernel<T><<<grid_for(n), 256, 0, s>>>(static_cast<T*>(x), n, act));
}

void gated_activation(Dt dt, const void* gate_up, int64_t rows, int64_t n, int act, void* out, cudaStream_t s) {
  if (rows * n == 0) return;
  LORAX_DISPATCH(dt, launch_pdl(gated_kernel<T>, grid_for(rows * n), 256, 0, s, static_cast<const T*>(gate_up), rows,
                                n, act, static_cast<T*>(out)));
}

void add(Dt dt, void* y, const void* x, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  LORAX_DISPATCH(dt, add_kernel<T><<<grid_for(n), 256, 0, s>>>(static_cast<T*>(y), static_cast<const T*>(x), n));
}

void softcap(Dt dt, void* x, int64_t n, float cap, cudaStream_t s) {
  if (n == 0) return;
  LORAX_DISPATCH(dt, softcap_kernel<T><<<grid_for(n), 256, 0, s>>>(static_cast<T*>(x), n, cap));
}

void gather_rows(Dt dt, const void* x, const int32_t* rows, int64_t n, int64_t H, void* out, cudaStream_t s) {
  if (n == 0) return;
  LORAX_DISPATCH(dt, gather_kernel<T><<<n, 1024, 0, s>>>(static_cast<const T*>(x), rows, H, static_cast<T*>(out)));
}

void add_bias(Dt dt, void* y, const void* bias, int64_t rows, int64_t n, cudaStream_t s) {
  if (rows * n == 0) return;
  LORAX_DISPATCH(dt, add_bias_kernel<T><<<grid_for(rows * n), 256, 0, s>>>(static_cast<T*>(y),
                                                                          static_cast<const T*>(bias), rows, n));
}

void fill_random(Dt dt, void* x, int64_t n, uint64_t seed, float stddev, cudaStream_t s) {
  if (n == 0) return;
  LORAX_DISPATCH(dt, fill_random_kernel<T><<<grid_for(n), 256, 0, s>>>(static_cast<T*>(x), n, seed, stddev));
}

void fill(Dt dt, void* x, int64_t n, float value, cudaStream_t s) {
  if (n == 0) return;
  LORAX_DISPATCH(dt, fill_kernel<T><<<grid_for(n), 256, 0, s>>>(static_cast<T*>(x), n, value));
}

void to_float(Dt dt, const void* x, int64_t n, float* out, cudaStream_t s) {
  if (n == 0) return;
  LORAX_DISPATCH(dt, to_float_kernel<T><<<grid_for(n), 256, 0, s>>>(static_cast<const T*>(x), n, out));
}

void from_float(Dt dt, const float* x, int64_t n, void* out, cudaStream_t s) {
  if (n == 0) return;
  LORAX_DISPATCH(dt, from_float_kernel<T><<<grid_for(n), 256, 0, s>>>(x, n, static_cast<T*>(out)));
}

}  // namespace lorax::kernels
