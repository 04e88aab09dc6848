// Every CUDA and cuBLAS call is checked; failures throw with the call's text.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <stdexcept>
#include <string>

namespace lorax::cuda {

inline void check(cudaError_t e, const char* what, const char* file, int line) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("CUDA error ") + cudaGetErrorString(e) + " in " + what + " at " + file + ":" +
                             std::to_string(line));
}
inline void check(cublasStatus_t e, const char* what, const char* file, int line) {
  if (e != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cuBLAS error ") + std::to_string(static_cast<int>(e)) + " in " + what +
                             " at " + file + ":" + std::to_string(line));
}

// For calls on release paths (frees, destroys, queries) that must not throw: a
// failure is logged, and cleared so that it is not reported by the next launch.
inline cudaError_t warn(cudaError_t e, const char* what, const char* file, int line) {
  if (e != cudaSuccess && e != cudaErrorNotReady) {
    std::fprintf(stderr, "lorax-engine: CUDA error %s in %s at %s:%d\n", cudaGetErrorString(e), what, file, line);
    cudaGetLastError();
  }
  return e;
}

}  // namespace lorax::cuda

#define CUDA_WARN(call) ::lorax::cuda::warn((call), #call, __FILE__, __LINE__)
#define CUDA_CHECK(call) ::lorax::cuda::check((call), #call, __FILE__, __LINE__)
// After a kernel launch: reports launch-configuration errors at once.
#define CUDA_CHECK_LAUNCH() ::lorax::cuda::check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)
