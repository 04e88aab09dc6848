// The product backend: bf16/fp16 (or fp32 for checking) storage, fp32
// accumulation, cuBLASLt GEMMs, kernels from kernels/, CUDA graphs for decode.
#pragma once
#include <memory>

#include "runtime/backend.h"

namespace lorax {

// dtype: F32, F16 or BF16 storage. Throws std::runtime_error when no GPU is usable.
std::unique_ptr<Backend> make_cuda_backend(DType dtype, int device = 0);

}  // namespace lorax
