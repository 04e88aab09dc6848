// A tensor is a typed view of backend-owned memory: host memory for the CPU
// backend, device memory for CUDA. Shapes are row-major; the last dim is contiguous.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

namespace lorax {

// F8E4M3: the OCP float8 e4m3fn format (storage only: the FP8 KV cache).
enum class DType { F32, F16, BF16, F8E4M3 };

size_t dtype_size(DType dt);
std::string dtype_name(DType dt);

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::shared_ptr<void> owner;  // keeps the allocation alive; views share it

  int64_t numel() const {
    return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<int64_t>());
  }
  int64_t dim(size_t i) const { return shape.at(i); }
  int64_t rows() const { return shape.empty() ? 0 : numel() / shape.back(); }
  int64_t cols() const { return shape.empty() ? 0 : shape.back(); }
  size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  bool defined() const { return data != nullptr; }
  template <typename T>
  T* as() const { return static_cast<T*>(data); }
  // First `n` rows of a 2-D (or more) tensor as a view.
  Tensor first_rows(int64_t n) const;
};

std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace lorax
