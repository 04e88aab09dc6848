// Greedy selection on the device, so only two numbers per row leave the GPU.
// Two passes: blocks over vocabulary slices find each slice's max, index and
// sum of exp relative to that max; one block per row merges the slices.
#include "kernels/common.cuh"

namespace lorax::kernels {
namespace {

constexpr int kSlices = 64;
constexpr int kThreads = 256;

struct Partial {
  float max;
  float sum;  // sum of exp(x - max) over the slice
  int64_t idx;
};

// Keeps the larger value, the lower index on ties (like std::max_element), and
// rescales the sums to the common max.
__device__ __forceinline__ Partial combine(Partial a, Partial b) {
  if (b.max > a.max || (b.max == a.max && b.idx < a.idx)) {
    const Partial t = a;
    a = b;
    b = t;
  }
  if (b.max > -INFINITY) a.sum += b.sum * __expf(b.max - a.max);
  return a;
}

__device__ Partial block_combine(Partial p, Partial* scratch) {
  for (int o = 16; o > 0; o >>= 1) {
    Partial q{__shfl_xor_sync(0xffffffffu, p.max, o), __shfl_xor_sync(0xffffffffu, p.sum, o),
              __shfl_xor_sync(0xffffffffu, p.idx, o)};
    p = combine(p, q);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) scratch[warp] = p;
  __syncthreads();
  if (threadIdx.x == 0)
    for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w) p = combine(p, scratch[w]);
  return p;
}

template <typename T>
__global__ void slice_kernel(const T* logits, int64_t vocab, Partial* out, const uint32_t* masks,
                             const int32_t* mask_rows) {
  __shared__ Partial scratch[kThreads / 32];
  const T* row = logits + blockIdx.y * vocab;
  const int64_t per = (vocab + kSlices - 1) / kSlices;
  const int64_t begin = blockIdx.x * per, end = min(vocab, begin + per);
  const uint32_t* mask =
      mask_rows && mask_rows[blockIdx.y] >= 0 ? masks + mask_rows[blockIdx.y] * ((vocab + 31) / 32) : nullptr;
  Partial p{-INFINITY, 0.0f, 0};
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x)
    if (!mask || (mask[i / 32] >> (i % 32) & 1)) p = combine(p, Partial{to_f(row[i]), 1.0f, i});
  p = block_combine(p, scratch);
  if (threadIdx.x == 0) out[blockIdx.y * kSlices + blockIdx.x] = p;
}

__global__ void merge_kernel(const Partial* parts, int32_t* ids, float* logprobs) {
  __shared__ Partial scratch[kSlices / 32];
  Partial p = parts[blockIdx.x * kSlices + threadIdx.x];
  p = block_combine(p, scratch);
  if (threadIdx.x == 0) {
    ids[blockIdx.x] = static_cast<int32_t>(p.idx);
    logprobs[blockIdx.x] = -logf(p.sum);
  }
}

}  // namespace

int64_t argmax_workspace_bytes(int64_t rows) { return rows * kSlices * static_cast<int64_t>(sizeof(Partial)); }

void argmax_logprob(Dt dt, const void* logits, int64_t rows, int64_t vocab, int32_t* ids, float* logprobs,
                    void* workspace, cudaStream_t s, const uint32_t* masks, const int32_t* mask_rows) {
  if (rows == 0) return;
  auto* parts = static_cast<Partial*>(workspace);
  LORAX_DISPATCH(dt, slice_kernel<T><<<dim3(kSlices, static_cast<unsigned>(rows)), kThreads, 0, s>>>(
                         static_cast<const T*>(logits), vocab, parts, masks, mask_rows));
  merge_kernel<<<static_cast<unsigned>(rows), kSlices, 0, s>>>(parts, ids, logprobs);
}

}  // namespace lorax::kernels
