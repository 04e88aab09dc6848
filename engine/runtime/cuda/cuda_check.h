// Every CUDA and cuBLAS call is checked; failures throw with the call's text.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>

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

}  // namespace lorax::cuda

#define CUDA_CHECK(call) ::lorax::cuda::check((call), #call, __FILE__, __LINE__)
// After a kernel launch: reports launch-configuration errors at once.
#define CUDA_CHECK_LAUNCH() ::lorax::cuda::check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)
