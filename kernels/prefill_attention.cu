// Prefill attention on tensor cores, FlashAttention-2 style, for runs of
// consecutive tokens of one sequence (a prompt, or a chunk of one continuing a
// cached context). A CTA takes a tile of up to kPrefillTileRows query tokens of
// one head; each of its 4 warps owns 16 query rows. K/V tiles are gathered from
// the paged cache through the block table into shared memory (cp.async, double
// buffered); S = Q K^T and O += P V run on mma.sync m16n8k16 with fp32
// accumulation; the softmax is online, in registers, in the exp2 domain.
// Written by hand: no packaged library does paged, windowed, soft-capped
// attention over our block-table layout.
#include <stdexcept>

#include "kernels/common.cuh"
#include "kernels/mma.cuh"

namespace lorax::kernels {
namespace {

constexpr int kWarps = kPrefillTileRows / 16;
constexpr int kThreads = kWarps * 32;
// Shared-memory rows are padded by 16 bytes so the 8 rows one ldmatrix reads
// fall in 8 different bank groups (no conflicts for any head dim here).
constexpr int kPad = 8;

template <int D, int BN>
constexpr size_t smem_bytes() {
  return static_cast<size_t>(kPrefillTileRows + 4 * BN) * (D + kPad) * 2;  // Q, then K and V twice
}

// D: head dim (a multiple of 16); BN: keys per K/V tile (fragment layouts: mma.cuh).
// C: the cache's storage type: T, copied asynchronously, or __nv_fp8_e4m3, whose
// codes are loaded and converted into the same shared-memory tiles (k_scale
// folds into the score scale, v_scale into the output).
template <typename T, typename C, int D, int BN>
__global__ void __launch_bounds__(kThreads) prefill_kernel(AttentionArgs a, const int32_t* tiles) {
  constexpr int LD = D + kPad;
  constexpr int kChunks = D / 8;  // 16-byte pieces per head row
  extern __shared__ __align__(16) unsigned char smem[];
  T* sQ = reinterpret_cast<T*>(smem);
  T* sK = sQ + kPrefillTileRows * LD;
  T* sV = sK + 2 * BN * LD;

  // Heads vary fastest: every head's heaviest tiles (the tile list puts them
  // first) are scheduled before any light one, so the last wave is short.
  const int t0 = tiles[2 * blockIdx.y], rows = tiles[2 * blockIdx.y + 1];
  const int head = blockIdx.x;
  const int kv_head = head / (a.q_heads / a.kv_heads);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int32_t* table = a.block_tables + static_cast<int64_t>(a.seq_of_token[t0]) * a.max_blocks;
  const int first_pos = a.positions[t0];
  const int kv_lo = a.window > 0 ? max(0, first_pos - a.window + 1) : 0;
  const int kv_hi = a.positions[t0 + rows - 1];  // positions of a run are consecutive
  const int num_kv_tiles = (kv_hi - kv_lo + BN) / BN;

  // Rows past the run repeat its last token: finite values, never written out.
  const T* qkv = static_cast<const T*>(a.qkv);
  for (int i = tid; i < kPrefillTileRows * kChunks; i += kThreads) {
    const int r = i / kChunks, c = i % kChunks;
    const int64_t t = t0 + min(r, rows - 1);
    cp_async16(sQ + r * LD + c * 8, qkv + t * a.width + static_cast<int64_t>(head) * D + c * 8);
  }
  // Keys past kv_hi (last tile) repeat position kv_hi, so masked lanes multiply
  // finite V rows by zero.
  const C* kc = static_cast<const C*>(a.k_cache);
  const C* vc = static_cast<const C*>(a.v_cache);
  const int64_t kv_row = static_cast<int64_t>(a.kv_heads) * D;
  const float score_scale = a.quant.fp8 ? a.scale * a.quant.k_scale : a.scale;
  const float out_scale = a.quant.fp8 ? a.quant.v_scale : 1.0f;
  auto load_kv = [&](int tile, int buf) {
    T* k_dst = sK + buf * BN * LD;
    T* v_dst = sV + buf * BN * LD;
    for (int i = tid; i < BN * kChunks; i += kThreads) {
      const int r = i / kChunks, c = i % kChunks;
      const int p = min(kv_lo + tile * BN + r, kv_hi);
      const int64_t slot = paged_slot(table, p, a.block_size);
      const int64_t off = slot * kv_row + static_cast<int64_t>(kv_head) * D + c * 8;
      if constexpr (std::is_same_v<C, T>) {
        cp_async16(k_dst + r * LD + c * 8, kc + off);
        cp_async16(v_dst + r * LD + c * 8, vc + off);
      } else {
        *reinterpret_cast<Pack<T, 8>*>(k_dst + r * LD + c * 8) = load_as<T, C, 8>(kc + off);
        *reinterpret_cast<Pack<T, 8>*>(v_dst + r * LD + c * 8) = load_as<T, C, 8>(vc + off);
      }
    }
  };
  load_kv(0, 0);
  cp_async_commit();

  const int g = lane >> 2, c = lane & 3;
  const int row0 = warp * 16 + g;  // this lane's rows: row0 and row0 + 8
  const int qpos[2] = {a.positions[t0 + min(row0, rows - 1)], a.positions[t0 + min(row0 + 8, rows - 1)]};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  float o[D / 8][4];
#pragma unroll
  for (int j = 0; j < D / 8; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;

  for (int tile = 0; tile < num_kv_tiles; ++tile) {
    const int buf = tile & 1;
    if (tile + 1 < num_kv_tiles) {
      load_kv(tile + 1, buf ^ 1);  // its buffer was released by the barrier ending the last iteration
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const T* K = sK + buf * BN * LD;
    const T* V = sV + buf * BN * LD;

    // S = Q K^T: 16 rows x BN keys per warp.
    float s[BN / 8][4];
#pragma unroll
    for (int j = 0; j < BN / 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t qa[4];
      ldmatrix_x4(qa, sQ + (warp * 16 + (lane & 15)) * LD + kk * 16 + (lane >> 4) * 8);
#pragma unroll
      for (int nn = 0; nn < BN / 16; ++nn) {
        uint32_t kb[4];
        ldmatrix_x4(kb, K + (nn * 16 + (lane & 7) + (lane >> 4) * 8) * LD + kk * 16 + ((lane >> 3) & 1) * 8);
        mma<T>(s[2 * nn], qa, kb[0], kb[1]);
        mma<T>(s[2 * nn + 1], qa, kb[2], kb[3]);
      }
    }

    // Scale, soft-cap and mask (causal + window), then the online softmax.
    const int key0 = kv_lo + tile * BN;
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < BN / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = key0 + j * 8 + 2 * c + (e & 1);
        const int qp = qpos[e >> 1];
        float v = s[j][e] * score_scale;
        if (a.softcap > 0.0f) v = a.softcap * tanhf(v / a.softcap);
        const bool visible = key <= qp && (a.window <= 0 || key > qp - a.window);
        v = visible ? v * kLog2e : -INFINITY;
        s[j][e] = v;
        tile_max[e >> 1] = fmaxf(tile_max[e >> 1], v);
      }
    float base[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float m_new = fmaxf(m[r], quad_max(tile_max[r]));
      // A row with nothing visible yet keeps m = -inf; its p values are exp2(-inf) = 0.
      base[r] = m_new == -INFINITY ? 0.0f : m_new;
      const float correction = exp2f(m[r] - base[r]);
      m[r] = m_new;
      l[r] *= correction;
#pragma unroll
      for (int j = 0; j < D / 8; ++j) {
        o[j][2 * r] *= correction;
        o[j][2 * r + 1] *= correction;
      }
    }
#pragma unroll
    for (int j = 0; j < BN / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[j][e] = exp2f(s[j][e] - base[e >> 1]);
        l[e >> 1] += s[j][e];
      }

    // O += P V: the S accumulator layout is the A fragment layout of P.
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      const uint32_t pa[4] = {pack2<T>(s[2 * kk][0], s[2 * kk][1]), pack2<T>(s[2 * kk][2], s[2 * kk][3]),
                              pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int dn = 0; dn < D / 16; ++dn) {
        uint32_t vb[4];
        ldmatrix_x4_trans(vb, V + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + dn * 16 + (lane >> 4) * 8);
        mma<T>(o[2 * dn], pa, vb[0], vb[1]);
        mma<T>(o[2 * dn + 1], pa, vb[2], vb[3]);
      }
    }
    __syncthreads();  // everyone is done with `buf` before it is refilled
  }

  T* out = static_cast<T*>(a.out);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row0 + 8 * r;
    const float sum = quad_sum(l[r]);
    if (row >= rows) continue;
    const float inv = sum > 0.0f ? out_scale / sum : 0.0f;
    T* dst = out + (static_cast<int64_t>(t0 + row) * a.q_heads + head) * D + 2 * c;
#pragma unroll
    for (int j = 0; j < D / 8; ++j)
      *reinterpret_cast<uint32_t*>(dst + j * 8) = pack2<T>(o[j][2 * r] * inv, o[j][2 * r + 1] * inv);
  }
}

template <typename T, typename C, int D, int BN>
void launch_for_cache(const AttentionArgs& a, const int32_t* tiles, int num_tiles, cudaStream_t s) {
  constexpr size_t bytes = smem_bytes<D, BN>();
  static const bool configured = [] {
    return cudaFuncSetAttribute(prefill_kernel<T, C, D, BN>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                static_cast<int>(bytes)) == cudaSuccess;
  }();
  if (!configured) throw std::runtime_error("prefill attention: cannot reserve shared memory");
  dim3 grid(static_cast<unsigned>(a.q_heads), static_cast<unsigned>(num_tiles));
  prefill_kernel<T, C, D, BN><<<grid, kThreads, bytes, s>>>(a, tiles);
}

template <typename T, int D, int BN>
void launch(const AttentionArgs& a, const int32_t* tiles, int num_tiles, cudaStream_t s) {
  if (a.quant.fp8)
    launch_for_cache<T, __nv_fp8_e4m3, D, BN>(a, tiles, num_tiles, s);
  else
    launch_for_cache<T, T, D, BN>(a, tiles, num_tiles, s);
}

template <typename T>
bool dispatch(const AttentionArgs& a, const int32_t* tiles, int num_tiles, cudaStream_t s) {
  switch (a.head_dim) {
    case 16: launch<T, 16, 64>(a, tiles, num_tiles, s); return true;
    case 32: launch<T, 32, 64>(a, tiles, num_tiles, s); return true;
    case 64: launch<T, 64, 64>(a, tiles, num_tiles, s); return true;
    case 96: launch<T, 96, 64>(a, tiles, num_tiles, s); return true;
    case 128: launch<T, 128, 64>(a, tiles, num_tiles, s); return true;
    case 256: launch<T, 256, 32>(a, tiles, num_tiles, s); return true;  // keeps O and S in registers
    default: return false;
  }
}

}  // namespace

bool prefill_attention(Dt dt, const AttentionArgs& a, const int32_t* tiles, int num_tiles, cudaStream_t s) {
  if (num_tiles == 0) return true;
  if (dt == Dt::F32 || !aligned16(a.qkv) || !aligned16(a.k_cache) || !aligned16(a.v_cache) || a.width % 8 != 0)
    return false;
  if (dt == Dt::BF16) return dispatch<__nv_bfloat16>(a, tiles, num_tiles, s);
  return dispatch<__half>(a, tiles, num_tiles, s);
}

}  // namespace lorax::kernels
