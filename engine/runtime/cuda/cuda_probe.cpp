#include "runtime/cuda/cuda_probe.h"

#include <cuda_bf16.h>

#include <algorithm>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "runtime/cuda/cuda_check.h"

namespace lorax {

namespace {

// Median of `reps` timed runs of `fn` on `stream`, in milliseconds.
template <typename F>
float time_ms(cudaStream_t stream, int reps, F fn) {
  cudaEvent_t a, b;
  CUDA_CHECK(cudaEventCreate(&a));
  CUDA_CHECK(cudaEventCreate(&b));
  fn();  // warm-up
  std::vector<float> times;
  for (int i = 0; i < reps; ++i) {
    CUDA_CHECK(cudaEventRecord(a, stream));
    fn();
    CUDA_CHECK(cudaEventRecord(b, stream));
    CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    times.push_back(ms);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

double measure_copy_bandwidth_gbs(size_t bytes) {
  void *src = nullptr, *dst = nullptr;
  CUDA_CHECK(cudaMalloc(&src, bytes));
  CUDA_CHECK(cudaMalloc(&dst, bytes));
  kernels::fill_random(kernels::Dt::BF16, src, static_cast<int64_t>(bytes / 2), 7, 1.0f, nullptr);
  float ms = time_ms(nullptr, 10, [&] { CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, nullptr)); });
  cudaFree(src);
  cudaFree(dst);
  return 2.0 * bytes / (ms * 1e-3) / 1e9;
}

double measure_bf16_gemm_tflops(int n) {
  const size_t elems = static_cast<size_t>(n) * n;
  void *a, *b, *c, *ws;
  const size_t ws_bytes = 64ull << 20;
  CUDA_CHECK(cudaMalloc(&a, elems * 2));
  CUDA_CHECK(cudaMalloc(&b, elems * 2));
  CUDA_CHECK(cudaMalloc(&c, elems * 2));
  CUDA_CHECK(cudaMalloc(&ws, ws_bytes));
  kernels::fill_random(kernels::Dt::BF16, a, elems, 1, 1.0f, nullptr);
  kernels::fill_random(kernels::Dt::BF16, b, elems, 2, 1.0f, nullptr);
  cublasLtHandle_t lt;
  CUDA_CHECK(cublasLtCreate(&lt));
  cublasLtMatmulDesc_t desc;
  cublasLtMatrixLayout_t la, lb, lc;
  CUDA_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  cublasOperation_t ta = CUBLAS_OP_T;
  CUDA_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  CUDA_CHECK(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, n, n, n));
  CUDA_CHECK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, n, n, n));
  CUDA_CHECK(cublasLtMatrixLayoutCreate(&lc, CUDA_R_16BF, n, n, n));
  const float one = 1.0f, zero = 0.0f;
  float ms = time_ms(nullptr, 10, [&] {
    CUDA_CHECK(cublasLtMatmul(lt, desc, &one, a, la, b, lb, &zero, c, lc, c, lc, nullptr, ws, ws_bytes, nullptr));
  });
  cublasLtMatrixLayoutDestroy(la);
  cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(lc);
  cublasLtMatmulDescDestroy(desc);
  cublasLtDestroy(lt);
  cudaFree(a);
  cudaFree(b);
  cudaFree(c);
  cudaFree(ws);
  return 2.0 * n * static_cast<double>(n) * n / (ms * 1e-3) / 1e12;
}

const char* cuda_device_name() {
  static std::string name;
  cudaDeviceProp prop{};
  if (name.empty() && cudaGetDeviceProperties(&prop, 0) == cudaSuccess) name = prop.name;
  return name.c_str();
}

}  // namespace lorax
