#include "runtime/backend.h"

#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace lorax {

std::shared_ptr<void> Backend::host_alloc(size_t bytes) {
  // 256-byte alignment: every staged tensor starts on a boundary vector loads accept.
  void* p = std::aligned_alloc(256, (std::max<size_t>(bytes, 1) + 255) / 256 * 256);
  if (!p) throw std::bad_alloc();
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

void Backend::to_storage(const float* src, int64_t n, void* dst) const {
  if (compute_dtype() != DType::F32)
    throw std::logic_error(name() + " backend: to_storage for " + dtype_name(compute_dtype()) + " is not implemented");
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

Backend::DeviceCopy Backend::copy_to_device(std::shared_ptr<void> host, size_t) {
  return {std::move(host), [] { return true; }};
}

}  // namespace lorax
