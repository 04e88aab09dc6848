// Tensor-core decode attention (decode_attention.cu), called by paged_attention
// with its split-context plan.
#pragma once
#include <cuda_runtime.h>

#include "kernels/kernels.h"

namespace lorax::kernels {

// Attention for the tokens paged_attention serves, on tensor cores, when the
// shape suits: 16-bit types, 1-8 query heads per KV head, head dim 64, 128 or 256.
// Same contract as the CUDA-core kernel: writes `out` when splits == 1, else
// the workspace partials its merge reads. Returns false (nothing launched) otherwise.
bool decode_attention_tc_shape(Dt dt, int q_heads, int kv_heads, int head_dim);
bool decode_attention_tc(Dt dt, const AttentionArgs& a, int splits, int chunk, cudaStream_t s);

}  // namespace lorax::kernels
