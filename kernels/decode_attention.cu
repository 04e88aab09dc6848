// Decode attention on tensor cores. A CTA serves one token, one KV head and
// one context split; the query heads sharing the KV head (1-8) are the rows
// of a 16-row mma tile (rows past the group are zero; even one row takes far
// fewer instructions per key than the CUDA-core kernel), so K and V are
// read once for the group and every score and product is one mma.sync. Its 4
// warps take interleaved 16-key steps with their own online softmax and meet
// in shared memory at the end. K and V go straight from the paged cache into
// fragment registers, with no shared-memory staging:
//  - S = Q K^T contracts over the head dim, which may be permuted as long as Q
//    and K agree: lane (g, c) loads 16 contiguous bytes of key g's row per 32
//    dims and uses them as k = {2c, 2c+1, 2c+8, 2c+9} of two mma steps; Q's A
//    fragment is loaded with the same permutation.
//  - O += P V contracts over keys, which run along V's rows, so each B register
//    pairs two keys' values of one dim (__byte_perm of two loaded words). The
//    output columns are permuted so a lane needs one contiguous span of D/8
//    dims: column n of 8-column tile j is dim n * D/8 + j.
// The CUDA-core kernel in attention.cu (one to four positions per warp,
// 128 registers per thread for Llama-3-8B shapes) kept 4 CTAs per SM and
// reached 26-36% of HBM bandwidth at batch 64. Written by hand: no packaged
// library does paged GQA decode over our block-table layout.
#include "kernels/decode_attention.h"

#include "kernels/mma.cuh"

namespace lorax::kernels {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxGroup = 8;  // query heads per KV head held in the tile's rows 0-7
constexpr int kStepKeys = 16;

// 16 bytes as four 32-bit words (two 16-bit values each).
__device__ __forceinline__ uint4 load16(const void* p) { return *reinterpret_cast<const uint4*>(p); }

// Low (hi = false) or high 16-bit halves of a and b, a's in the low half.
__device__ __forceinline__ uint32_t pair_halves(uint32_t a, uint32_t b, bool hi) {
  return __byte_perm(a, b, hi ? 0x7632 : 0x5410);
}

// Head dims above 128 split the output dims between warp pairs that walk the
// same keys (each computes the scores, K comes from L1 the second time), so a
// lane's output stays at 16 dims and 64 registers.
template <int D>
__host__ __device__ constexpr int dim_parts() { return D > 128 ? 2 : 1; }

template <typename T, int D>
__global__ void __launch_bounds__(kWarps * 32, dim_parts<D>() == 1 ? 3 : 2)
    decode_tc_kernel(AttentionArgs a, int splits, int chunk) {
  constexpr int kParts = dim_parts<D>();
  constexpr int kPartDims = D / kParts;
  constexpr int kKeyWarps = kWarps / kParts;  // warps walking distinct keys
  constexpr int kBlocks32 = D / 32;           // 32-dim blocks of a row (two mma k-steps each)
  constexpr int kSpan = kPartDims / 8;        // output dims per lane (permuted, see above)
  constexpr int kSpanWords = kSpan / 2;
  pdl_wait();
  pdl_release();
  const int64_t t = a.token_index ? a.token_index[blockIdx.x] : blockIdx.x;
  const int kv_head = blockIdx.y;
  const int group = a.q_heads / a.kv_heads;
  const int split = blockIdx.z;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int part = warp % kParts, key_warp = warp / kParts;
  const int g = lane >> 2, c = lane & 3;
  const int pos = a.positions[t];
  const int lo = a.window > 0 ? max(0, pos - a.window + 1) : 0;
  const int begin = lo + split * chunk;
  if (begin > pos) return;  // the merge reads only the splits inside the context
  const int end = min(pos + 1, begin + chunk);
  const T* kc = static_cast<const T*>(a.k_cache);
  const T* vc = static_cast<const T*>(a.v_cache);
  const int32_t* table = a.block_tables + static_cast<int64_t>(a.seq_of_token[t]) * a.max_blocks;
  const int64_t kv_row = static_cast<int64_t>(a.kv_heads) * D;
  const int64_t head_off = static_cast<int64_t>(kv_head) * D;
  auto row_of = [&](int key) {
    const int k = min(key, end - 1);  // keys past the end repeat the last one: finite, masked
    return paged_slot(table, k, a.block_size) * kv_row + head_off;
  };

  // Q's A fragments (rows g; rows g + 8 stay zero), permuted like K.
  uint32_t qa[kBlocks32][4];
  {
    const T* q = static_cast<const T*>(a.qkv) + t * a.width + static_cast<int64_t>(kv_head * group + min(g, group - 1)) * D;
#pragma unroll
    for (int b = 0; b < kBlocks32; ++b) {
      const uint4 w = load16(q + 32 * b + 8 * c);
      const bool live = g < group;
      qa[b][0] = live ? w.x : 0u;
      qa[b][1] = live ? w.y : 0u;
      qa[b][2] = live ? w.z : 0u;
      qa[b][3] = live ? w.w : 0u;
    }
  }
  float m = -INFINITY, l = 0.0f;  // row g, exp2 domain; l sums this lane's keys only
  float o[kSpan][4];
#pragma unroll
  for (int j = 0; j < kSpan; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;

  for (int k0 = begin + key_warp * kStepKeys; k0 < end; k0 += kKeyWarps * kStepKeys) {
    // Issue every load of the step first: K rows k0 + g and k0 + 8 + g, V rows
    // k0 + {2c, 2c+1, 2c+8, 2c+9}, this lane's pieces of each.
    uint4 kr[2][kBlocks32];
    uint4 vr[4][kSpanWords / 4];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const T* row = kc + row_of(k0 + 8 * h + g);
#pragma unroll
      for (int b = 0; b < kBlocks32; ++b) kr[h][b] = load16(row + 32 * b + 8 * c);
    }
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const T* row = vc + row_of(k0 + 2 * c + (r & 1) + 8 * (r >> 1)) + part * kPartDims + g * kSpan;
#pragma unroll
      for (int w = 0; w < kSpanWords / 4; ++w) vr[r][w] = load16(row + 8 * w);
    }

    // S = Q K^T for 16 keys: s[h] holds keys k0 + 8h + 2c, + 1 (rows g, g + 8).
    float s[2][4] = {};
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int b = 0; b < kBlocks32; ++b) {
        const uint32_t a0[4] = {qa[b][0], 0u, qa[b][1], 0u};
        const uint32_t a1[4] = {qa[b][2], 0u, qa[b][3], 0u};
        mma<T>(s[h], a0, kr[h][b].x, kr[h][b].y);
        mma<T>(s[h], a1, kr[h][b].z, kr[h][b].w);
      }

    // Scale, soft-cap, mask past the end; online softmax of row g.
    float mx = -INFINITY;
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        float v = s[h][e] * a.scale;
        if (a.softcap > 0.0f) v = a.softcap * tanhf(v / a.softcap);
        v = k0 + 8 * h + 2 * c + e < end ? v * kLog2e : -INFINITY;
        s[h][e] = v;
        mx = fmaxf(mx, v);
      }
    const float m_new = fmaxf(m, quad_max(mx));  // finite: key k0 is always inside
    const float correction = exp2f(m - m_new);
    m = m_new;
    l *= correction;
#pragma unroll
    for (int j = 0; j < kSpan; ++j) {
      o[j][0] *= correction;
      o[j][1] *= correction;
    }
    float p[2][2];
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        p[h][e] = exp2f(s[h][e] - m_new);
        l += p[h][e];
      }

    // O += P V: P's A fragment from the S layout (keys 2c, 2c+1 and 8+2c, 9+2c).
    const uint32_t pa[4] = {pack2<T>(p[0][0], p[0][1]), 0u, pack2<T>(p[1][0], p[1][1]), 0u};
#pragma unroll
    for (int j = 0; j < kSpan; ++j) {
      const uint32_t* w0 = reinterpret_cast<const uint32_t*>(&vr[0][0]);
      const uint32_t* w1 = reinterpret_cast<const uint32_t*>(&vr[1][0]);
      const uint32_t* w2 = reinterpret_cast<const uint32_t*>(&vr[2][0]);
      const uint32_t* w3 = reinterpret_cast<const uint32_t*>(&vr[3][0]);
      const bool hi = j & 1;
      mma<T>(o[j], pa, pair_halves(w0[j / 2], w1[j / 2], hi), pair_halves(w2[j / 2], w3[j / 2], hi));
    }
  }

  // Meet the other warps: row g's max, sum and its 2 * kSpan output dims (of its part).
  __shared__ float sm_m[kWarps][kMaxGroup], sm_l[kWarps][kMaxGroup];
  __shared__ float sm_o[kWarps][kMaxGroup][D + 4];  // padded: rows g start in different banks
  const float l_row = quad_sum(l);
  if (g < group) {
    if (c == 0) {
      sm_m[warp][g] = m;
      sm_l[warp][g] = l_row;
    }
#pragma unroll
    for (int j = 0; j < kSpan; ++j) {
      sm_o[warp][g][part * kPartDims + 2 * c * kSpan + j] = o[j][0];
      sm_o[warp][g][part * kPartDims + (2 * c + 1) * kSpan + j] = o[j][1];
    }
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < group * D; idx += blockDim.x) {
    const int r = idx / D, d = idx % D;
    const int first = d / kPartDims;  // the warps holding dim d: first, first + kParts, ...
    float M = -INFINITY;
    for (int w = first; w < kWarps; w += kParts) M = fmaxf(M, sm_m[w][r]);
    float L = 0.0f, O = 0.0f;
    if (M > -INFINITY)
      for (int w = first; w < kWarps; w += kParts) {
        const float f = exp2f(sm_m[w][r] - M);  // a warp that saw no key has m = -inf: f = 0
        L += sm_l[w][r] * f;
        O += sm_o[w][r][d] * f;
      }
    const int head = kv_head * group + r;
    if (splits == 1) {
      static_cast<T*>(a.out)[(t * a.q_heads + head) * static_cast<int64_t>(D) + d] = from_f<T>(L > 0.0f ? O / L : 0.0f);
    } else {
      float* part = a.workspace + ((t * a.q_heads + head) * static_cast<int64_t>(splits) + split) * (D + 2);
      part[2 + d] = O;
      if (d == 0) {
        part[0] = M * 0.6931471805599453f;  // the merge works in the natural-log domain
        part[1] = L;
      }
    }
  }
}

template <typename T, int D>
void launch(const AttentionArgs& a, int splits, int chunk, cudaStream_t s) {
  const auto tokens = static_cast<unsigned>(a.token_index ? a.num_indexed : a.T);
  const dim3 grid(tokens, static_cast<unsigned>(a.kv_heads), static_cast<unsigned>(splits));
  launch_pdl(decode_tc_kernel<T, D>, grid, kWarps * 32, 0, s, a, splits, chunk);
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <typename T>
bool dispatch(const AttentionArgs& a, int splits, int chunk, cudaStream_t s) {
  switch (a.head_dim) {
    case 64: launch<T, 64>(a, splits, chunk, s); return true;
    case 128: launch<T, 128>(a, splits, chunk, s); return true;
    case 256: launch<T, 256>(a, splits, chunk, s); return true;
    default: return false;
  }
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
