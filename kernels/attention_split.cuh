// The split-context contract between the decode attention kernels (the
// CUDA-core one in attention.cu, the tensor-core one in decode_attention.cu)
// and merge_splits_kernel: split s of a token covers context positions
// [start + s * chunk, start + (s + 1) * chunk) up to the token's own position,
// where start is where its (possibly windowed) context begins. When a context
// has several splits, each leaves its partial softmax in the workspace.
#pragma once
#include "kernels/common.cuh"

namespace lorax::kernels {

__device__ __forceinline__ int context_start(const AttentionArgs& a, int pos) {
  return a.window > 0 ? max(0, pos - a.window + 1) : 0;
}

// [begin, end) of split `split` of a token at `pos`; false when the split lies
// past the context (it writes nothing and the merge never reads it).
__device__ __forceinline__ bool split_range(const AttentionArgs& a, int pos, int split, int chunk, int& begin,
                                            int& end) {
  begin = context_start(a, pos) + split * chunk;
  end = min(pos + 1, begin + chunk);
  return begin <= pos;
}

// Splits that hold part of the context of a token at `pos`.
__device__ __forceinline__ int splits_used(const AttentionArgs& a, int pos, int chunk) {
  return (pos - context_start(a, pos) + chunk) / chunk;
}

// Combines the kWarps warps' partial softmaxes of `rows` query heads (head0 + r)
// and stores every output dim: normalised when the context is one split, else
// this split's partial (max in the natural-log domain, sum, unnormalised output)
// for the merge. m_at(w, r), l_at(w, r) and o_at(w, r, d) read the warps'
// results from shared memory; kLog2: their maxima are in the exp2 domain.
template <typename T, int kWarps, bool kLog2, typename MAt, typename LAt, typename OAt>
__device__ __forceinline__ void store_split_result(const AttentionArgs& a, int64_t t, int head0, int rows,
                                                   int splits, int split, MAt m_at, LAt l_at, OAt o_at) {
  const int D = a.head_dim;
  for (int idx = threadIdx.x; idx < rows * D; idx += blockDim.x) {
    const int r = idx / D, d = idx % D;
    float M = -INFINITY;
    for (int w = 0; w < kWarps; ++w) M = fmaxf(M, m_at(w, r));
    float L = 0.0f, O = 0.0f;
    if (M > -INFINITY)
      for (int w = 0; w < kWarps; ++w) {
        // A warp that saw no key has m = -inf: its weight is 0.
        const float f = kLog2 ? exp2f(m_at(w, r) - M) : __expf(m_at(w, r) - M);
        L += l_at(w, r) * f;
        O += o_at(w, r, d) * f;
      }
    const int64_t head = head0 + r;
    if (splits == 1) {
      static_cast<T*>(a.out)[(t * a.q_heads + head) * D + d] = from_f<T>(L > 0.0f ? O / L : 0.0f);
    } else {
      float* part = a.workspace + ((t * a.q_heads + head) * splits + split) * (D + 2);
      part[2 + d] = O;
      if (d == 0) {
        part[0] = kLog2 ? M * 0.6931471805599453f : M;
        part[1] = L;
      }
    }
  }
}

}  // namespace lorax::kernels
