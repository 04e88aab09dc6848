// Paged attention for flattened batches: every token (a decode, or one row of a
// possibly chunked prefill) attends to positions [lo, pos] of its sequence
// through the block table. One CTA serves up to 8 query heads that share a KV
// head (GQA: K/V are read once for the group); its 4 warps stride over the
// context with an online softmax, each working on several positions at once
// when a head row fits 4-16 lanes of 16 bytes. Long contexts are split across CTAs
// (flash-decoding) and merged by a second kernel.
#include <algorithm>

#include "kernels/attention_split.cuh"
#include "kernels/common.cuh"
#include "kernels/decode_attention.h"

namespace lorax::kernels {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxHeadsPerCta = 8;

int heads_per_cta(int group) {
  for (int g = kMaxHeadsPerCta; g > 1; --g)
    if (group % g == 0) return g;
  return 1;
}

// The split layout is planned for the longest context rounded up (to a power
// of two up to 1024, then to a multiple of 1024), so it changes, and a recorded
// decode graph with it, once in many steps rather than every few tokens. Splits
// past a token's own context return at once.
int context_bucket(int max_context) {
  if (max_context > 1024) return (max_context + 1023) / 1024 * 1024;
  int bucket = 64;
  while (bucket < max_context) bucket *= 2;
  return bucket;
}

// Context positions per CTA: enough splits that small batches still fill the
// GPU (each warp otherwise walks a long context one dependent load at a time),
// at most 512 so long prefills stay one pass per chunk. The CUDA-core kernel
// wants about 4 CTAs per SM; the tensor-core one holds 3 per SM and its warps
// take 16-key steps, so it gets chunks of whole 64-key rounds and splits stop
// at about 2 CTAs per SM (a batch of 64 at short contexts needs no merge pass).
int split_chunk(int64_t T, int q_heads, int kv_heads, int max_context, bool tensor_cores) {
  max_context = context_bucket(max_context);
  const int64_t ctas = T * (q_heads / heads_per_cta(q_heads / kv_heads));
  const int per_sm = tensor_cores ? 2 : 4, granule = tensor_cores ? 64 : 16;
  const int64_t wanted = std::max<int64_t>(1, (per_sm * sm_count() + ctas - 1) / ctas);
  int64_t chunk = (max_context + wanted - 1) / wanted;
  chunk = (chunk + granule - 1) / granule * granule;
  return static_cast<int>(std::min<int64_t>(512, std::max<int64_t>(granule, chunk)));
}

int num_splits(int max_context, int chunk) { return (context_bucket(max_context) + chunk - 1) / chunk; }

// `lane` of the LPP lanes that share one row takes elements [lane*EPL, lane*EPL + EPL).
template <typename T, int EPL, int LPP>
__device__ __forceinline__ void load_lanes(const T* row, int lane, int D, float (&out)[EPL]) {
  constexpr bool kWord = (EPL * sizeof(T)) % 4 == 0 && (EPL * sizeof(T)) <= 16;
  if (kWord && D == LPP * EPL) {
    const Pack<T, EPL> w = *reinterpret_cast<const Pack<T, EPL>*>(row + lane * EPL);
#pragma unroll
    for (int e = 0; e < EPL; ++e) out[e] = to_f(w.v[e]);
  } else {
    // Unconditional (clamped) loads, so all of them are in flight at once.
#pragma unroll
    for (int e = 0; e < EPL; ++e) out[e] = to_f(row[min(lane * EPL + e, D - 1)]);
  }
}

// LPP lanes share one context position (head_dim <= LPP * EPL), so a warp works
// on 32 / LPP positions at once: with 16-byte lanes (EPL * sizeof(T) == 16) a
// 128-dim bf16 row takes 16 lanes and each dot product needs 4 shuffles, not 5,
// for twice the positions per load instruction. MAXG: query heads per CTA at most.
// C: the KV cache's storage type (T, or __nv_fp8_e4m3 whose codes are scaled
// back: k_scale folds into the query, v_scale into the output).
template <typename T, typename C, int EPL, int MAXG, int LPP>
__global__ void __launch_bounds__(kWarps * 32) attention_kernel(AttentionArgs a, int hg, int splits, int chunk) {
  constexpr int kMaxGroup = MAXG;
  constexpr int kPerWarp = 32 / LPP;  // positions a warp works on at once
  pdl_wait();
  pdl_release();
  const int64_t t = a.token_index ? a.token_index[blockIdx.x] : blockIdx.x;
  const int q_head0 = blockIdx.y * hg;
  const int group = a.q_heads / a.kv_heads;
  const int kv_head = q_head0 / group;
  const int split = blockIdx.z;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int sub = lane / LPP, part = lane % LPP;  // which position, which slice of the head
  const int D = a.head_dim;
  int begin, end;
  if (!split_range(a, a.positions[t], split, chunk, begin, end)) return;
  const T* qkv = static_cast<const T*>(a.qkv);
  const C* kc = static_cast<const C*>(a.k_cache);
  const C* vc = static_cast<const C*>(a.v_cache);
  const int32_t* table = a.block_tables + static_cast<int64_t>(a.seq_of_token[t]) * a.max_blocks;
  const int64_t kv_row = static_cast<int64_t>(a.kv_heads) * D;
  const float q_scale = a.quant.fp8 ? a.scale * a.quant.k_scale : a.scale;

  float q[kMaxGroup][EPL], acc[kMaxGroup][EPL], m[kMaxGroup], l[kMaxGroup];
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
    // Clamped, unconditional loads (issued together); out-of-range lanes are zeroed.
    load_lanes<T, EPL, LPP>(qkv + t * a.width + static_cast<int64_t>(q_head0 + min(g, hg - 1)) * D, part, D, q[g]);
#pragma unroll
    for (int e = 0; e < EPL; ++e) {
      const bool inside = g < hg && part * EPL + e < D;
      acc[g][e] = 0.0f;
      q[g][e] = inside ? q[g][e] * q_scale : 0.0f;
    }
  }
  // Each warp takes kUnroll * kPerWarp positions per iteration: their K/V loads
  // are issued together, then the dot products, then the (sequential) softmax
  // updates, so memory latency is paid once per iteration. The loop bound is
  // the same for all lanes of a warp (its shuffles need every lane).
  constexpr int kUnroll = kPerWarp > 1 ? 2 : 4;  // registers: more would cost resident CTAs
  constexpr int kStep = kWarps * kPerWarp;
  for (int j0 = begin + warp * kPerWarp; j0 < end; j0 += kStep * kUnroll) {
    float k[kUnroll][EPL], v[kUnroll][EPL];
    bool valid[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int j = j0 + u * kStep + sub;
      valid[u] = j < end;
      const int jj = valid[u] ? j : begin;
      const int64_t slot = paged_slot(table, jj, a.block_size);
      load_lanes<C, EPL, LPP>(kc + slot * kv_row + static_cast<int64_t>(kv_head) * D, part, D, k[u]);
      load_lanes<C, EPL, LPP>(vc + slot * kv_row + static_cast<int64_t>(kv_head) * D, part, D, v[u]);
    }
#pragma unroll
    for (int g = 0; g < kMaxGroup; ++g) {
      if (g >= hg) break;
      float sc[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        float dot = 0.0f;
#pragma unroll
        for (int e = 0; e < EPL; ++e) dot += q[g][e] * k[u][e];
        sc[u] = dot;
      }
#pragma unroll
      for (int off = LPP / 2; off > 0; off /= 2)
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) sc[u] += __shfl_xor_sync(0xffffffffu, sc[u], off);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        if (!valid[u]) continue;
        float s = sc[u];
        if (a.softcap > 0.0f) s = a.softcap * tanhf(s / a.softcap);
        const float m_new = fmaxf(m[g], s);
        const float correction = __expf(m[g] - m_new);
        const float p = __expf(s - m_new);
        l[g] = l[g] * correction + p;
#pragma unroll
        for (int e = 0; e < EPL; ++e) acc[g][e] = acc[g][e] * correction + p * v[u][e];
        m[g] = m_new;
      }
    }
  }
  // Fold the warp's kPerWarp partial softmaxes (lanes LPP apart) into lanes 0..LPP-1.
#pragma unroll
  for (int off = LPP; off < 32; off *= 2)
#pragma unroll
    for (int g = 0; g < kMaxGroup; ++g) {
      const float m_o = __shfl_xor_sync(0xffffffffu, m[g], off);
      const float l_o = __shfl_xor_sync(0xffffffffu, l[g], off);
      const float M = fmaxf(m[g], m_o);
      const float f = M == -INFINITY ? 0.0f : __expf(m[g] - M);
      const float f_o = M == -INFINITY ? 0.0f : __expf(m_o - M);
      l[g] = l[g] * f + l_o * f_o;
#pragma unroll
      for (int e = 0; e < EPL; ++e) {
        const float acc_o = __shfl_xor_sync(0xffffffffu, acc[g][e], off);
        acc[g][e] = acc[g][e] * f + acc_o * f_o;
      }
      m[g] = M;
    }
  if (a.quant.fp8)  // V's scale, once per output element
#pragma unroll
    for (int g = 0; g < kMaxGroup; ++g)
#pragma unroll
      for (int e = 0; e < EPL; ++e) acc[g][e] *= a.quant.v_scale;
  // Merge the warps' partial softmaxes through shared memory.
  __shared__ float sm_m[kWarps][kMaxGroup], sm_l[kWarps][kMaxGroup];
  __shared__ float sm_acc[kWarps][kMaxGroup][LPP * EPL];
  if (lane == 0)
    for (int g = 0; g < hg; ++g) {
      sm_m[warp][g] = m[g];
      sm_l[warp][g] = l[g];
    }
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
    if (g >= hg || sub != 0) break;
#pragma unroll
    for (int e = 0; e < EPL; ++e) sm_acc[warp][g][part * EPL + e] = acc[g][e];
  }
  __syncthreads();
  store_split_result<T, kWarps, false>(
      a, t, q_head0, hg, splits, split, [&](int w, int g) { return sm_m[w][g]; },
      [&](int w, int g) { return sm_l[w][g]; }, [&](int w, int g, int d) { return sm_acc[w][g][d]; });
}

template <typename T>
__global__ void merge_splits_kernel(AttentionArgs a, int splits, int chunk) {
  pdl_wait();
  pdl_release();
  const int64_t t = a.token_index ? a.token_index[blockIdx.x] : blockIdx.x;
  const int head = blockIdx.y;
  const int D = a.head_dim;
  const float* parts = a.workspace + (t * a.q_heads + head) * static_cast<int64_t>(splits) * (D + 2);
  // Splits past the token's own context never ran: only read the ones that did.
  const int used = splits_used(a, a.positions[t], chunk);
  float M = -INFINITY;
#pragma unroll 16
  for (int s = 0; s < used; ++s) M = fmaxf(M, parts[s * (D + 2)]);
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float L = 0.0f, O = 0.0f;
#pragma unroll 16
    for (int s = 0; s < used; ++s) {
      const float* p = parts + s * (D + 2);
      if (p[0] == -INFINITY) continue;
      const float f = __expf(p[0] - M);
      L += p[1] * f;
      O += p[2 + d] * f;
    }
    static_cast<T*>(a.out)[(t * a.q_heads + head) * static_cast<int64_t>(D) + d] = from_f<T>(L > 0.0f ? O / L : 0.0f);
  }
}

template <typename T, typename C, int EPL, int LPP>
void launch_for_cache(Dt dt, const AttentionArgs& a, cudaStream_t s) {
  const int hg = heads_per_cta(a.q_heads / a.kv_heads);
  // Fewer register-resident heads when the group is small.
  auto kernel = hg == 1   ? attention_kernel<T, C, EPL, 1, LPP>
                : hg <= 4 ? attention_kernel<T, C, EPL, 4, LPP>
                          : attention_kernel<T, C, EPL, 8, LPP>;
  const bool tc = !a.no_tensor_cores && decode_attention_tc_shape(dt, a.q_heads, a.kv_heads, a.head_dim);
  const int chunk = split_chunk(a.T, a.q_heads, a.kv_heads, a.max_context, tc);
  const int splits = num_splits(a.max_context, chunk);
  // Splits are sized for all T tokens (the workspace is), also when only some are launched.
  const auto tokens = static_cast<unsigned>(a.token_index ? a.num_indexed : a.T);
  if (!tc || !decode_attention_tc(dt, a, splits, chunk, s)) {
    dim3 grid(tokens, static_cast<unsigned>(a.q_heads / hg), static_cast<unsigned>(splits));
    launch_pdl(kernel, grid, kWarps * 32, 0, s, a, hg, splits, chunk);
  }
  if (splits > 1) launch_pdl(merge_splits_kernel<T>, dim3(tokens, static_cast<unsigned>(a.q_heads)), 128, 0, s, a, splits, chunk);
}

template <typename T, int EPL, int LPP>
void launch(Dt dt, const AttentionArgs& a, cudaStream_t s) {
  if (a.quant.fp8)
    launch_for_cache<T, __nv_fp8_e4m3, EPL, LPP>(dt, a, s);
  else
    launch_for_cache<T, T, EPL, LPP>(dt, a, s);
}

}  // namespace

int64_t paged_attention_workspace(int64_t T, int q_heads, int kv_heads, int head_dim, int max_context) {
  // Either kernel's plan (which one runs depends on the dtype, not known here).
  int splits = 1;
  for (bool tc : {false, true}) splits = std::max(splits, num_splits(max_context, split_chunk(T, q_heads, kv_heads, max_context, tc)));
  return splits > 1 ? T * q_heads * static_cast<int64_t>(splits) * (head_dim + 2) : 0;
}

void paged_attention(Dt dt, const AttentionArgs& a, cudaStream_t s) {
  if (a.T == 0 || (a.token_index && a.num_indexed == 0)) return;
  LORAX_DISPATCH(dt, {
    // 16-byte lanes, several positions per warp, when a row is 4, 8 or 16 of them.
    constexpr int V = 16 / sizeof(T);
    if (a.head_dim % V == 0 && a.head_dim / V == 4) return launch<T, V, 4>(dt, a, s);
    if (a.head_dim % V == 0 && a.head_dim / V == 8) return launch<T, V, 8>(dt, a, s);
    if (a.head_dim % V == 0 && a.head_dim / V == 16) return launch<T, V, 16>(dt, a, s);
    switch ((a.head_dim + 31) / 32) {  // otherwise one position per warp
      case 1: launch<T, 1, 32>(dt, a, s); break;
      case 2: launch<T, 2, 32>(dt, a, s); break;
      case 3: launch<T, 3, 32>(dt, a, s); break;
      case 4: launch<T, 4, 32>(dt, a, s); break;
      case 5: launch<T, 5, 32>(dt, a, s); break;
      case 6: launch<T, 6, 32>(dt, a, s); break;
      default: launch<T, 8, 32>(dt, a, s); break;
    }
  });
}

}  // namespace lorax::kernels
