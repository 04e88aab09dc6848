#include "runtime/backend.h"

#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace lorax {

std::shared_ptr<void> Backend::host_alloc(size_t bytes) {
  bytes = (std::max<size_t>(bytes, 1) + 255) / 256 * 256;
  {
    std::lock_guard lock(host_budget_->mu);
    if (host_budget_->limit > 0 && host_budget_->used + bytes > host_budget_->limit)
      throw HostMemoryFull("the reserved host memory for adapters is used up");
    host_budget_->used += bytes;
  }
  // 256-byte alignment: every staged tensor starts on a boundary vector loads accept.
  void* p = std::aligned_alloc(256, bytes);
  if (!p) throw std::bad_alloc();
  std::weak_ptr<HostBudget> budget = host_budget_;
  return std::shared_ptr<void>(p, [budget, bytes](void* q) {
    std::free(q);
    if (auto b = budget.lock()) {
      std::lock_guard lock(b->mu);
      b->used -= bytes;
    }
  });
}

void Backend::reserve_host_memory(size_t bytes) {
  std::lock_guard lock(host_budget_->mu);
  host_budget_->limit = bytes;
}

Tensor Backend::empty_as(const std::vector<int64_t>& shape, DType dtype) {
  if (dtype == compute_dtype()) return empty(shape);
  throw std::invalid_argument(name() + " backend: no " + dtype_name(dtype) + " storage");
}

std::vector<uint8_t> Backend::download_bytes(const Tensor& t) {
  // Host-memory backends: the bytes are right there.
  const auto* p = static_cast<const uint8_t*>(t.data);
  return std::vector<uint8_t>(p, p + t.bytes());
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
