// Ceilings measured on the device itself, for benchmark ratios: device-to-device
// copy bandwidth (bytes read + written) and the bf16 GEMM rate of cuBLASLt.
#pragma once
#include <cstddef>

namespace lorax {

double measure_copy_bandwidth_gbs(std::size_t bytes = std::size_t{2} << 30);
double measure_bf16_gemm_tflops(int n = 8192);
// The name of device 0, e.g. "NVIDIA H100 80GB HBM3".
const char* cuda_device_name();

}  // namespace lorax
