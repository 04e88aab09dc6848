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

template <typename T, int E>
__device__ __forceinline__ uint4 as_words(const Pack<T, E>& p) {
  static_assert(E * sizeof(T) == 16, "16 bytes");
  uint4 w;
  memcpy(&w, &p, 16);
  return w;
}

// Low (hi = false) or high 16-bit halves of a and b, a's in the low half.
__device__ __forceinline__ uint32_t pair_halves(uint32_t a, uint32_t b, bool hi) {
  return __byte_perm(a, b, hi ? 0x7632 : 0x5410);
}

// 8x8 16-bit matrix transposed across the warp (fragment layout in, fragment layout out).
__device__ __forceinline__ uint32_t transpose8x8(uint32_t v) {
  uint32_t r;
  asm("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(r) : "r"(v));
  return r;
}

// C: the cache's storage type (T, or __nv_fp8_e4m3: k_scale folds into the
// score scale, v_scale into the output).
// An FP8 cache (C = __nv_fp8_e4m3) differs in two ways, each measured on the
// H200 (batch 64, Llama-3-8B shape, 4k context), where the loop is bound by latency
// and instruction count rather than bytes:
//  - two 16-key steps per loop turn, so that a turn's loads move as many bytes as one
//    step of a 16-bit cache, with one online-softmax update per turn;
//  - V^T P^T in half whatever T is: e4m3 values are exact in half, whose conversion
//    is one instruction (bfloat16 takes four), and P in half is finer than in bf16.
// Tried and dropped: converting by moving bits (5 instructions a pair, slower than
// the cvt chain), reading the next turn's block-table entries a turn ahead (0.73x).
template <typename T, typename C, int D>
__global__ void __launch_bounds__(kWarps * 32, D <= 128 ? 3 : 2)
    decode_tc_kernel(AttentionArgs a, int splits, int chunk) {
  constexpr bool kFp8 = !std::is_same_v<C, T>;
  constexpr int kBlocks32 = D / 32;  // 32-dim blocks of a row (two mma k-steps each)
  constexpr int kTiles = D / 16;     // 16-dim output tiles (mma rows)
  constexpr int kSpan = D / 16;      // dims per lane and V row in the output permutation
  constexpr int kSub = kFp8 && D <= 128 ? 2 : 1;  // 16-key steps per turn (D = 256 would spill)
  constexpr int kTurnKeys = kStepKeys * kSub;
  using V = std::conditional_t<kFp8, __half, T>;  // the type of V^T P^T
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
  const int bs = a.block_size;
  // A turn's keys span at most three cache blocks when a block holds half a turn:
  // one division per turn then, instead of one per row.
  const bool few_blocks = bs >= kTurnKeys / 2;

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

  for (int k0 = begin + warp * kTurnKeys; k0 < end; k0 += kWarps * kTurnKeys) {
    const int first_block = k0 / bs, first_off = k0 - first_block * bs;
    auto row_of = [&](int key) {
      key = min(key, end - 1);  // keys past the end repeat the last one: finite, masked
      if (!few_blocks) return paged_slot(table, key, bs) * kv_row + head_off;
      int off = first_off + (key - k0);
      const int hops = (off >= bs) + (off >= 2 * bs);
      off -= hops * bs;
      return (static_cast<int64_t>(table[first_block + hops]) * bs + off) * kv_row + head_off;
    };
    // Every load of the turn first, as stored: K rows k0 + 16u + g and + 8 + g (8
    // elements per 32 dims), V rows k0 + 16u + {2c, 2c+1, 2c+8, 2c+9} (dims g and
    // g + 8 of each tile).
    Pack<C, 8> kraw[kSub][2][kBlocks32];
    Pack<C, kSpan> vraw[kSub][4][2];  // this lane's spans of each V row (D/16 elements)
#pragma unroll
    for (int u = 0; u < kSub; ++u) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const C* row = kc + row_of(k0 + kStepKeys * u + 8 * h + g);
#pragma unroll
        for (int b = 0; b < kBlocks32; ++b) kraw[u][h][b] = *reinterpret_cast<const Pack<C, 8>*>(row + 32 * b + 8 * c);
      }
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const C* row = vc + row_of(k0 + kStepKeys * u + 2 * c + (r & 1) + 8 * (r >> 1));
#pragma unroll
        for (int h = 0; h < 2; ++h) vraw[u][r][h] = *reinterpret_cast<const Pack<C, kSpan>*>(row + (g + 8 * h) * kSpan);
      }
    }

    // S^T = K Q^T, 16 keys per step: s[u] holds keys k0 + 16u + g and + 8 + g,
    // heads 2c and 2c + 1. Scaled, soft-capped, masked past the end.
    float s[kSub][4];
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int u = 0; u < kSub; ++u) {
      s[u][0] = s[u][1] = s[u][2] = s[u][3] = 0.0f;
#pragma unroll
      for (int b = 0; b < kBlocks32; ++b) {
        const uint4 k_lo = as_words(to_storage<T, C, 8>(kraw[u][0][b]));
        const uint4 k_hi = as_words(to_storage<T, C, 8>(kraw[u][1][b]));
        const uint32_t a0[4] = {k_lo.x, k_hi.x, k_lo.y, k_hi.y};
        const uint32_t a1[4] = {k_lo.z, k_hi.z, k_lo.w, k_hi.w};
        mma<T>(s[u], a0, qb[b].x, qb[b].y);
        mma<T>(s[u], a1, qb[b].z, qb[b].w);
      }
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float v = s[u][e] * score_scale;
        if (a.softcap > 0.0f) v = a.softcap * tanhf(v / a.softcap);
        v = k0 + kStepKeys * u + g + 8 * (e >> 1) < end ? v * kLog2e : -INFINITY;
        s[u][e] = v;
        mx[e & 1] = fmaxf(mx[e & 1], v);
      }
    }
    // Online softmax per head over the turn's keys (8 lanes of a column hold them).
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

#pragma unroll
    for (int u = 0; u < kSub; ++u) {
      float p[4];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        p[e] = exp2f(s[u][e] - m[e & 1]);
        l[e & 1] += p[e];
      }
      // O^T += V^T P^T. P^T's B fragment is the transpose of the S^T layout:
      // movmatrix turns (key g, heads 2c..2c+1) into (head g, keys 2c..2c+1).
      const uint32_t pb0 = transpose8x8(pack2<V>(p[0], p[1]));  // keys 0-7
      const uint32_t pb1 = transpose8x8(pack2<V>(p[2], p[3]));  // keys 8-15
      Pack<V, kSpan> vr[4][2];
#pragma unroll
      for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int h = 0; h < 2; ++h) vr[r][h] = to_storage<V, C, kSpan>(vraw[u][r][h]);
#pragma unroll
      for (int j = 0; j < kTiles; ++j) {
        const bool hi = j & 1;
        const uint32_t va[4] = {pair_halves(word(vr[0][0], j / 2), word(vr[1][0], j / 2), hi),
                                pair_halves(word(vr[0][1], j / 2), word(vr[1][1], j / 2), hi),
                                pair_halves(word(vr[2][0], j / 2), word(vr[3][0], j / 2), hi),
                                pair_halves(word(vr[2][1], j / 2), word(vr[3][1], j / 2), hi)};
        mma<V>(o[j], va, pb0, pb1);
      }
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
