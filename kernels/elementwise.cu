#include <atomic>
// Embedding gather, norms (with fused residual add), RoPE, KV write,
// activations and small row ops.
#include <algorithm>
#include <stdexcept>
#include <string>

#include <type_traits>

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

constexpr int kMaxRotaryHalf = 256;  // rotary dims up to 512

// One block per row; statistics in fp32; each thread keeps its PER packs in
// registers so the row is read once, with vector loads where the row allows.
// Loads are unconditional (clamped index, masked value) so they are in flight
// together. With `residual`, x += residual first (the sum is written back to
// x, which carries the residual stream).
template <typename T, int E, int PER>
__global__ void __launch_bounds__(1024) norm_kernel(T* x, const T* residual, const T* w, const T* b, int kind,
                                                    float eps, bool one_plus, int64_t H, T* y) {
  using P = Pack<T, E>;
  pdl_wait();
  pdl_release();
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const int packs = static_cast<int>(H / E);
  P* xr = reinterpret_cast<P*>(x + row * H);
  const P* rr = residual ? reinterpret_cast<const P*>(residual + row * H) : nullptr;
  float vals[PER][E];
  P wv[PER], bv[PER];
#pragma unroll
  for (int j = 0; j < PER; ++j) {
    const int c = min(static_cast<int>(threadIdx.x) + j * static_cast<int>(blockDim.x), packs - 1);
    const P xv = xr[c];
    P rv{};
    if (rr) rv = rr[c];
    wv[j] = reinterpret_cast<const P*>(w)[c];  // weights now too: one memory round trip for everything
    if (b) bv[j] = reinterpret_cast<const P*>(b)[c];
#pragma unroll
    for (int e = 0; e < E; ++e) vals[j][e] = to_f(xv.v[e]) + (rr ? to_f(rv.v[e]) : 0.0f);
  }
  float sum = 0.0f;
#pragma unroll
  for (int j = 0; j < PER; ++j) {
    const int c = threadIdx.x + j * blockDim.x;
    if (rr) {
      P stored;
#pragma unroll
      for (int e = 0; e < E; ++e) {
        stored.v[e] = from_f<T>(vals[j][e]);
        vals[j][e] = to_f(stored.v[e]);  // normalise exactly what the residual stream holds
      }
      if (c < packs) xr[c] = stored;
    }
#pragma unroll
    for (int e = 0; e < E; ++e) {
      vals[j][e] = c < packs ? vals[j][e] : 0.0f;
      sum += vals[j][e];
    }
  }
  float mean = 0.0f;
  if (kind == 0) mean = block_sum(sum, scratch) / H;
  float sq = 0.0f;
#pragma unroll
  for (int j = 0; j < PER; ++j) {
    const int c = threadIdx.x + j * blockDim.x;
#pragma unroll
    for (int e = 0; e < E; ++e)
      if (c < packs) sq += (vals[j][e] - mean) * (vals[j][e] - mean);
  }
  const float inv = rsqrtf(block_sum(sq, scratch) / H + eps);
  P* yr = reinterpret_cast<P*>(y + row * H);
#pragma unroll
  for (int j = 0; j < PER; ++j) {
    const int c = threadIdx.x + j * blockDim.x;
    P out;
#pragma unroll
    for (int e = 0; e < E; ++e) {
      const float wf = to_f(wv[j].v[e]);
      out.v[e] = from_f<T>((vals[j][e] - mean) * inv * (one_plus ? 1.0f + wf : wf) + (b ? to_f(bv[j].v[e]) : 0.0f));
    }
    if (c < packs) yr[c] = out;
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

// One block per token: the token's angles once into shared memory, then every
// q and k head rotated in place, E elements at a time, and for k heads the
// rotated k and the matching v head written into the cache slot. (A block per
// (token, head) spent a 2k-token prefill mostly scheduling its 80k tiny blocks:
// 100 us per layer with Llama-3-8B shapes on an H100.)
// E elements into a cache of storage type C: as they are, or each times
// `inv_scale` converted (an FP8 cache).
template <typename C, typename T, int E>
__device__ __forceinline__ void store_kv(C* dst, const Pack<T, E>& x, float inv_scale) {
  if constexpr (std::is_same_v<C, T>) {
    *reinterpret_cast<Pack<T, E>*>(dst) = x;
  } else {
    Pack<C, E> q;
#pragma unroll
    for (int e = 0; e < E; ++e) q.v[e] = from_f<C>(to_f(x.v[e]) * inv_scale);
    *reinterpret_cast<Pack<C, E>*>(dst) = q;
  }
}

template <typename T, typename C, int E>
__global__ void rope_kv_write_kernel(T* qkv, const int32_t* pos, const float* inv_freq, const int32_t* slots,
                                     int64_t width, int q_heads, int kv_heads, int head_dim, int rotary_dim, C* k,
                                     C* v, float k_inv, float v_inv) {
  using P = Pack<T, E>;
  __shared__ float cos_s[kMaxRotaryHalf], sin_s[kMaxRotaryHalf];
  const int64_t t = blockIdx.x;
  const int half = inv_freq ? rotary_dim / 2 : 0;
  const float p = static_cast<float>(pos[t]);  // positions and frequencies are no kernel's output
  for (int i = threadIdx.x; i < half; i += blockDim.x) sincosf(p * inv_freq[i], &sin_s[i], &cos_s[i]);
  __syncthreads();
  pdl_wait();
  pdl_release();
  T* row = qkv + t * width;
  const int64_t kv_row = static_cast<int64_t>(kv_heads) * head_dim;
  const int64_t slot = static_cast<int64_t>(slots[t]) * kv_row;
  const int rot = half / E, tail = (head_dim - 2 * half) / E, per_head = head_dim / E;
  const int n_rot = (q_heads + kv_heads) * rot, n_tail = kv_heads * tail, n_v = kv_heads * per_head;
  for (int i = threadIdx.x; i < n_rot + n_tail + n_v; i += blockDim.x) {
    if (i < n_rot) {  // rotated pairs (c + e, c + e + half)
      const int h = i / rot, c = (i % rot) * E;
      P* a = reinterpret_cast<P*>(row + static_cast<int64_t>(h) * head_dim + c);
      P* bp = reinterpret_cast<P*>(row + static_cast<int64_t>(h) * head_dim + c + half);
      const P x1 = *a, x2 = *bp;
      P r1, r2;
#pragma unroll
      for (int e = 0; e < E; ++e) {
        const float cs = cos_s[c + e], sn = sin_s[c + e], f1 = to_f(x1.v[e]), f2 = to_f(x2.v[e]);
        r1.v[e] = from_f<T>(f1 * cs - f2 * sn);
        r2.v[e] = from_f<T>(f2 * cs + f1 * sn);
      }
      *a = r1;
      *bp = r2;
      if (h >= q_heads) {
        C* dst = k + slot + static_cast<int64_t>(h - q_heads) * head_dim + c;
        store_kv(dst, r1, k_inv);
        store_kv(dst + half, r2, k_inv);
      }
    } else if (i < n_rot + n_tail) {  // the unrotated tail of a k head
      const int j = i - n_rot, h = j / tail, c = 2 * half + (j % tail) * E;
      store_kv(k + slot + static_cast<int64_t>(h) * head_dim + c,
               *reinterpret_cast<const P*>(row + static_cast<int64_t>(q_heads + h) * head_dim + c), k_inv);
    } else {  // v heads sit kv_heads heads after their k heads
      const int j = i - n_rot - n_tail, h = j / per_head, c = (j % per_head) * E;
      store_kv(v + slot + static_cast<int64_t>(h) * head_dim + c,
               *reinterpret_cast<const P*>(row + static_cast<int64_t>(q_heads + kv_heads + h) * head_dim + c), v_inv);
    }
  }
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

// act(gate) * up, E elements at a time; a row per blockIdx.y so no thread
// divides a 64-bit index.
template <typename T, int E>
__global__ void gated_kernel(const T* gu, int64_t rows, int64_t n, int act, T* out) {
  using P = Pack<T, E>;
  pdl_wait();
  pdl_release();
  const int64_t packs = n / E;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const P* gate = reinterpret_cast<const P*>(gu + r * 2 * n);
    const P* up = reinterpret_cast<const P*>(gu + r * 2 * n + n);
    P* o = reinterpret_cast<P*>(out + r * n);
    for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < packs;
         c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      const P g = gate[c], u = up[c];
      P res;
#pragma unroll
      for (int e = 0; e < E; ++e) res.v[e] = from_f<T>(act_f(to_f(g.v[e]), act) * to_f(u.v[e]));
      o[c] = res;
    }
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
__global__ void to_float_kernel(const T* x, int64_t n, float* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = to_f(x[i]);
}

template <typename T>
__global__ void fp8_e4m3_to_kernel(const __nv_fp8_e4m3* codes, int64_t n, T* out) {
  for (int64_t i = 8 * (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x); i < n;
       i += 8 * static_cast<int64_t>(gridDim.x) * blockDim.x)
    *reinterpret_cast<Pack<T, 8>*>(out + i) = load_as<T, __nv_fp8_e4m3, 8>(codes + i);
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

namespace {
// Elements per 16-byte vector when every row offset of width `n` (and the base
// pointers, which the allocator aligns) keeps it aligned; else 1.
template <typename T>
constexpr int vector_width() { return 16 / sizeof(T); }
template <typename T>
bool vector_ok(int64_t n) { return n % vector_width<T>() == 0; }

template <typename T, int E>
void launch_norm(T* x, const T* r, const T* w, const T* b, int kind, float eps, bool one_plus, int64_t rows, int64_t H,
                 T* y, cudaStream_t s) {
  const int64_t packs = H / E;
  for (int per : {1, 2, 4, 8, 16}) {
    if (packs > 1024LL * per) continue;
    const int threads = static_cast<int>(std::min<int64_t>(1024, ((packs + per - 1) / per + 31) / 32 * 32));
    auto go = [&](auto kernel) { launch_pdl(kernel, static_cast<unsigned>(rows), threads, 0, s, x, r, w, b, kind, eps,
                                            one_plus, H, y); };
    switch (per) {
      case 1: return go(norm_kernel<T, E, 1>);
      case 2: return go(norm_kernel<T, E, 2>);
      case 4: return go(norm_kernel<T, E, 4>);
      case 8: if constexpr (E == 1) return go(norm_kernel<T, E, 8>); else break;
      case 16: if constexpr (E == 1) return go(norm_kernel<T, E, 16>); else break;
    }
  }
  throw std::invalid_argument("norm: hidden size " + std::to_string(H) + " exceeds the supported " +
                              std::to_string(E == 1 ? 16384 : 4096 * E));
}
}  // namespace

void norm(Dt dt, void* x, const void* residual, const void* w, const void* b, int kind, float eps, bool one_plus,
          int64_t rows, int64_t H, void* y, cudaStream_t s) {
  if (rows == 0) return;
  LORAX_DISPATCH(dt, {
    auto* xp = static_cast<T*>(x);
    auto* rp = static_cast<const T*>(residual);
    auto* wp = static_cast<const T*>(w);
    auto* bp = static_cast<const T*>(b);
    auto* yp = static_cast<T*>(y);
    if (vector_ok<T>(H))
      launch_norm<T, vector_width<T>()>(xp, rp, wp, bp, kind, eps, one_plus, rows, H, yp, s);
    else
      launch_norm<T, 1>(xp, rp, wp, bp, kind, eps, one_plus, rows, H, yp, s);
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
                   void* v_cache, const KvQuant& quant, cudaStream_t s) {
  if (n_tok == 0) return;
  const int half = inv_freq ? rotary_dim / 2 : 0;
  if (half > kMaxRotaryHalf)
    throw std::invalid_argument("rope: rotary dim " + std::to_string(rotary_dim) + " exceeds the supported " +
                                std::to_string(2 * kMaxRotaryHalf));
  // Multiplying by the inverse, as the CPU backend does, so both round the same float.
  const float k_inv = 1.0f / quant.k_scale, v_inv = 1.0f / quant.v_scale;
  LORAX_DISPATCH(dt, {
    auto run = [&](auto* k, auto* v) {
      using C = std::remove_pointer_t<decltype(k)>;
      auto go = [&](auto kernel) {
        launch_pdl(kernel, static_cast<unsigned>(n_tok), 256, 0, s, static_cast<T*>(qkv), pos, inv_freq, slots, width,
                   q_heads, kv_heads, head_dim, rotary_dim, k, v, k_inv, v_inv);
      };
      if (vector_ok<T>(width) && vector_ok<T>(head_dim) && vector_ok<T>(half))
        go(rope_kv_write_kernel<T, C, vector_width<T>()>);
      else
        go(rope_kv_write_kernel<T, C, 1>);
    };
    if (quant.fp8)
      run(static_cast<__nv_fp8_e4m3*>(k_cache), static_cast<__nv_fp8_e4m3*>(v_cache));
    else
      run(static_cast<T*>(k_cache), static_cast<T*>(v_cache));
  });
}

void activation(Dt dt, void* x, int64_t n, int act, cudaStream_t s) {
  if (n == 0) return;
  LORAX_DISPATCH(dt, activation_kernel<T><<<grid_for(n), 256, 0, s>>>(static_cast<T*>(x), n, act));
}

void gated_activation(Dt dt, const void* gate_up, int64_t rows, int64_t n, int act, void* out, cudaStream_t s) {
  if (rows * n == 0) return;
  LORAX_DISPATCH(dt, {
    auto go = [&](auto kernel, int64_t packs) {
      const dim3 grid(blocks_for(packs, 256), static_cast<unsigned>(std::min<int64_t>(rows, 65535)));
      launch_pdl(kernel, grid, 256, 0, s, static_cast<const T*>(gate_up), rows, n, act, static_cast<T*>(out));
    };
    if (vector_ok<T>(n))
      go(gated_kernel<T, vector_width<T>()>, n / vector_width<T>());
    else
      go(gated_kernel<T, 1>, n);
  });
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

void fp8_e4m3_to(Dt dt, const uint8_t* codes, int64_t n, void* out, cudaStream_t s) {
  if (n % 8 != 0 || dt == Dt::F32) throw std::invalid_argument("fp8_e4m3_to: n must be a multiple of 8, dt 16-bit");
  if (n == 0) return;
  const auto* c = reinterpret_cast<const __nv_fp8_e4m3*>(codes);
  if (dt == Dt::BF16)
    fp8_e4m3_to_kernel<<<grid_for(n / 8), 256, 0, s>>>(c, n, static_cast<__nv_bfloat16*>(out));
  else
    fp8_e4m3_to_kernel<<<grid_for(n / 8), 256, 0, s>>>(c, n, static_cast<__half*>(out));
}

std::atomic<bool> programmatic_launch{true};

void set_programmatic_launch(bool enabled) { programmatic_launch.store(enabled); }

}  // namespace lorax::kernels
