// Decode attention on tensor cores. A CTA serves one token, one KV head and
// one context split; its 4 warps take interleaved 16-key steps with their own
// online softmax and meet in shared memory at the end. The scores are computed
// transposed, S^T = K Q^T: the 16 keys of a step are the mma rows and the
// query heads sharing the KV head (1-8) the 8 columns, so no tile rows are
// padding and the output O^T = V^T P^T needs only D/16 accumulator tiles.
// K and V go straight from the paged cache into fragment registers, with no
// shared-memory staging:
//  - K Q^T contracts over the head dim, which may be permuted as long as K and
//    Q agree: lane (g, c) loads 16 contiguous bytes per 32 dims of key g's row
//    (and key g + 8's) and uses them as k = {2c, 2c+1, 2c+8, 2c+9} of two mma
//    steps; Q's B fragment is loaded with the same permutation.
//  - V^T P^T contracts over keys, which run along V's rows, so each A register
//    pairs two keys' values of one dim (__byte_perm of two loaded words); the
//    output rows are permuted so that lane g needs two contiguous spans of
//    D/16 dims: row m of 16-row tile j is dim m * D/16 + j.
//  - P^T's B fragment is the transpose of the S^T accumulator layout, one
//    movmatrix per 8 keys.
// Against the CUDA-core kernel in attention.cu (128 registers per thread for
// Llama-3-8B shapes, 26-36% of HBM bandwidth at batch 64) and this kernel's
// first form with the heads as padded mma rows (168 registers and spills),
// this one holds 142. Written by hand: no packaged library does paged GQA
// decode over our block-table layout.
#include "kernels/decode_attention.h"

#include <type_traits>

#include "kernels/attention_split.cuh"
#include "kernels/mma.cuh"

namespace lorax::kernels {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxGroup = 8;  // query heads per KV head: the 8 columns of the score tile
constexpr int kStepKeys = 16;

// 16 bytes as four 32-bit words (two 16-bit values each).
__device__ __forceinline__ uint4 load16(const void* p) { return *reinterpret_cast<const uint4*>(p); }

// Eight cache elements as eight T values in four words.
template <typename T, typename C>
__device__ __forceinline__ uint4 load8_as(const C* p) {
  if constexpr (std::is_same_v<C, T>) {
    return load16(p);
  } else {
    const Pack<T, 8> v = load_as<T, C, 8>(p);
    uint4 out;
    memcpy(&out, &v, 16);
    return out;
  }
}

// Low (hi = false) or high 16-bit halves of a and b, a's in the low half.
__device__ __forceinline__ uint32_t pair_halves(uint32_t a, uint32_t b, bool hi) {
  return __byte_perm(a, b, hi ? 0x7632 : 0x5410);
}

// 8x8 16-bit matrix transposed across the warp (fragment layout in, fragment layout out).
__device__ __forceinline__ uint32_t transpose8x8(uint32_t v) {
  uint32_t r;
  asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(r) : "r"(v));
  return r;
}

// C: the cache's storage type (T, or __nv_fp8_e4m3: k_scale folds into the
// score scale, v_scale into the output).
template <typename T, typename C, int D>
__global__ void __launch_bounds__(kWarps * 32, D <= 128 ? 3 : 2)
    decode_tc_kernel(AttentionArgs a, int splits, int chunk) {
  constexpr int kBlocks32 = D / 32;  // 32-dim blocks of a row (two mma k-steps each)
  constexpr int kTiles = D / 16;     // 16-dim output tiles (mma rows)
  constexpr int kSpan = D / 16;      // dims per lane and V row in the output permutation
  pdl_wait();
  pdl_release();
  const int64_t t = a.token_index ? a.token_index[blockIdx.x] : blockIdx.x;
  const int kv_head = blockIdx.y;
  const int group = a.q_heads / a.kv_heads;
  const int split = blockIdx.z;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, c = lane & 3;
  int begin, end;
  if (!split_range(a, a.positions[t], split, chunk, begin, end)) return;
  const C* kc = static_cast<const C*>(a.k_cache);
  const C* vc = static_cast<const C*>(a.v_cache);
  const float score_scale = a.quant.fp8 ? a.scale * a.quant.k_scale : a.scale;
  const float out_scale = a.quant.fp8 ? a.quant.v_scale : 1.0f;
  const int32_t* table = a.block_tables + static_cast<int64_t>(a.seq_of_token[t]) * a.max_blocks;
  const int64_t kv_row = static_cast<int64_t>(a.kv_heads) * D;
  const int64_t head_off = static_cast<int64_t>(kv_head) * D;
  auto row_of = [&](int key) {
    const int k = min(key, end - 1);  // keys past the end repeat the last one: finite, masked
    return paged_slot(table, k, a.block_size) * kv_row + head_off;
  };

  // Q^T's B fragments: head g's row (zero past the group), permuted like K.
  uint4 qb[kBlocks32];
  {
    const T* q = static_cast<const T*>(a.qkv) + t * a.width + static_cast<int64_t>(kv_head * group + min(g, group - 1)) * D;
#pragma unroll
    for (int b = 0; b < kBlocks32; ++b) {
      qb[b] = load16(q + 32 * b + 8 * c);
      if (g >= group) qb[b] = make_uint4(0u, 0u, 0u, 0u);
    }
  }
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // heads 2c, 2c+1; exp2 domain; l: this lane's keys
  float o[kTiles][4];
#pragma unroll
  for (int j = 0; j < kTiles; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;

  for (int k0 = begin + warp * kStepKeys; k0 < end; k0 += kWarps * kStepKeys) {
    // Every load of the step first: K rows k0 + g and k0 + 8 + g (16 bytes per
    // 32 dims), V rows k0 + {2c, 2c+1, 2c+8, 2c+9} (dims g and g + 8 of each tile).
    uint4 kr[2][kBlocks32];
    Pack<T, kSpan> vr[4][2];  // this lane's spans of each V row (D/16 elements)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const C* row = kc + row_of(k0 + 8 * h + g);
#pragma unroll
      for (int b = 0; b < kBlocks32; ++b) kr[h][b] = load8_as<T>(row + 32 * b + 8 * c);
    }
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const C* row = vc + row_of(k0 + 2 * c + (r & 1) + 8 * (r >> 1));
#pragma unroll
      for (int h = 0; h < 2; ++h) vr[r][h] = load_as<T, C, kSpan>(row + (g + 8 * h) * kSpan);
    }

    // S^T = K Q^T for 16 keys: s holds keys k0 + g and k0 + 8 + g, heads 2c and 2c + 1.
    float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int b = 0; b < kBlocks32; ++b) {
      const uint32_t a0[4] = {kr[0][b].x, kr[1][b].x, kr[0][b].y, kr[1][b].y};
      const uint32_t a1[4] = {kr[0][b].z, kr[1][b].z, kr[0][b].w, kr[1][b].w};
      mma<T>(s, a0, qb[b].x, qb[b].y);
      mma<T>(s, a1, qb[b].z, qb[b].w);
    }

    // Scale, soft-cap, mask past the end; online softmax per head over the
    // 16 keys (8 lanes of a column hold them).
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      float v = s[e] * score_scale;
      if (a.softcap > 0.0f) v = a.softcap * tanhf(v / a.softcap);
      v = k0 + g + 8 * (e >> 1) < end ? v * kLog2e : -INFINITY;
      s[e] = v;
      mx[e & 1] = fmaxf(mx[e & 1], v);
    }
    float corr[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
#pragma unroll
      for (int off = 4; off < 32; off *= 2) mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], off));
      const float m_new = fmaxf(m[h], mx[h]);  // finite: key k0 is always inside
      corr[h] = exp2f(m[h] - m_new);
      m[h] = m_new;
      l[h] *= corr[h];
    }
#pragma unroll
    for (int j = 0; j < kTiles; ++j) {
      o[j][0] *= corr[0];
      o[j][1] *= corr[1];
      o[j][2] *= corr[0];
      o[j][3] *= corr[1];
    }
    float p[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      p[e] = exp2f(s[e] - m[e & 1]);
      l[e & 1] += p[e];
    }

    // O^T += V^T P^T. P^T's B fragment is the transpose of the S^T layout:
    // movmatrix turns (key g, heads 2c..2c+1) into (head g, keys 2c..2c+1).
    const uint32_t pb0 = transpose8x8(pack2<T>(p[0], p[1]));  // keys 0-7
    const uint32_t pb1 = transpose8x8(pack2<T>(p[2], p[3]));  // keys 8-15
#pragma unroll
    for (int j = 0; j < kTiles; ++j) {
      const bool hi = j & 1;
      const uint32_t va[4] = {pair_halves(word(vr[0][0], j / 2), word(vr[1][0], j / 2), hi),
                              pair_halves(word(vr[0][1], j / 2), word(vr[1][1], j / 2), hi),
                              pair_halves(word(vr[2][0], j / 2), word(vr[3][0], j / 2), hi),
                              pair_halves(word(vr[2][1], j / 2), word(vr[3][1], j / 2), hi)};
      mma<T>(o[j], va, pb0, pb1);
    }
  }

  // Meet the other warps: per head its max, sum and output dims.
  __shared__ float sm_m[kWarps][kMaxGroup], sm_l[kWarps][kMaxGroup];
  __shared__ float sm_o[kWarps][kMaxGroup][D + 4];  // padded rows
#pragma unroll
  for (int h = 0; h < 2; ++h)
#pragma unroll
    for (int off = 4; off < 32; off *= 2) l[h] += __shfl_xor_sync(0xffffffffu, l[h], off);
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int head = 2 * c + h;
    if (head >= group) continue;
    if (g == 0) {
      sm_m[warp][head] = m[h];
      sm_l[warp][head] = l[h];
    }
#pragma unroll
    for (int j = 0; j < kTiles; ++j) {
      sm_o[warp][head][g * kSpan + j] = o[j][h] * out_scale;
      sm_o[warp][head][(g + 8) * kSpan + j] = o[j][2 + h] * out_scale;
    }
  }
  __syncthreads();
  store_split_result<T, kWarps, true>(
      a, t, kv_head * group, group, splits, split, [&](int w, int r) { return sm_m[w][r]; },
      [&](int w, int r) { return sm_l[w][r]; }, [&](int w, int r, int d) { return sm_o[w][r][d]; });
}

template <typename T, typename C, int D>
void launch(const AttentionArgs& a, int splits, int chunk, cudaStream_t s) {
  const auto tokens = static_cast<unsigned>(a.token_index ? a.num_indexed : a.T);
  const dim3 grid(tokens, static_cast<unsigned>(a.kv_heads), static_cast<unsigned>(splits));
  launch_pdl(decode_tc_kernel<T, C, D>, grid, kWarps * 32, 0, s, a, splits, chunk);
}

template <typename T, typename C>
bool dispatch_for_cache(const AttentionArgs& a, int splits, int chunk, cudaStream_t s) {
  switch (a.head_dim) {
    case 64: launch<T, C, 64>(a, splits, chunk, s); return true;
    case 128: launch<T, C, 128>(a, splits, chunk, s); return true;
    case 256: launch<T, C, 256>(a, splits, chunk, s); return true;
    default: return false;
  }
}

template <typename T>
bool dispatch(const AttentionArgs& a, int splits, int chunk, cudaStream_t s) {
  return a.quant.fp8 ? dispatch_for_cache<T, __nv_fp8_e4m3>(a, splits, chunk, s)
                     : dispatch_for_cache<T, T>(a, splits, chunk, s);
}

}  // namespace

bool decode_attention_tc_shape(Dt dt, int q_heads, int kv_heads, int head_dim) {
  return dt != Dt::F32 && q_heads / kv_heads <= kMaxGroup && (head_dim == 64 || head_dim == 128 || head_dim == 256);
}

bool decode_attention_tc(Dt dt, const AttentionArgs& a, int splits, int chunk, cudaStream_t s) {
  if (!decode_attention_tc_shape(dt, a.q_heads, a.kv_heads, a.head_dim) || a.width % 8 != 0 || !aligned16(a.qkv) ||
      !aligned16(a.k_cache) || !aligned16(a.v_cache))
    return false;
  if (dt == Dt::BF16) return dispatch<__nv_bfloat16>(a, splits, chunk, s);
  return dispatch<__half>(a, splits, chunk, s);
}

}  // namespace lorax::kernels
