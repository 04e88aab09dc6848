// Greedy selection on the device: one block per row finds the argmax and the
// log-sum-exp, so only two numbers per row leave the GPU.
#include "kernels/common.cuh"

namespace lorax::kernels {
namespace {

template <typename T>
__global__ void argmax_kernel(const T* logits, int64_t vocab, int32_t* ids, float* logprobs) {
  __shared__ float best_v[32];
  __shared__ int64_t best_i[32];
  __shared__ float scratch[32];
  const T* row = logits + blockIdx.x * vocab;
  float v = -INFINITY;
  int64_t idx = 0;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float x = to_f(row[i]);
    if (x > v) {  // strictly greater keeps the lowest index on ties, like std::max_element
      v = x;
      idx = i;
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int64_t oi = __shfl_xor_sync(0xffffffffu, idx, o);
    if (ov > v || (ov == v && oi < idx)) {
      v = ov;
      idx = oi;
    }
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    best_v[warp] = v;
    best_i[warp] = idx;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w)
      if (best_v[w] > best_v[0] || (best_v[w] == best_v[0] && best_i[w] < best_i[0])) {
        best_v[0] = best_v[w];
        best_i[0] = best_i[w];
      }
  }
  __syncthreads();
  const float m = best_v[0];
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) sum += __expf(to_f(row[i]) - m);
  sum = block_sum(sum, scratch);
  if (threadIdx.x == 0) {
    ids[blockIdx.x] = static_cast<int32_t>(best_i[0]);
    logprobs[blockIdx.x] = -logf(sum);
  }
}

}  // namespace

void argmax_logprob(Dt dt, const void* logits, int64_t rows, int64_t vocab, int32_t* ids, float* logprobs,
                    cudaStream_t s) {
  if (rows == 0) return;
  LORAX_DISPATCH(dt, argmax_kernel<T><<<rows, 1024, 0, s>>>(static_cast<const T*>(logits), vocab, ids, logprobs));
}

}  // namespace lorax::kernels
