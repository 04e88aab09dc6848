#include "runtime/tensor.h"

#include <stdexcept>

namespace lorax {

size_t dtype_size(DType dt) {
  switch (dt) {
    case DType::F32: return 4;
    case DType::F16:
    case DType::BF16: return 2;
    case DType::F8E4M3: return 1;
  }
  return 0;
}

std::string dtype_name(DType dt) {
  switch (dt) {
    case DType::F32: return "float32";
    case DType::F16: return "float16";
    case DType::BF16: return "bfloat16";
    case DType::F8E4M3: return "float8_e4m3";
  }
  return "?";
}

Tensor Tensor::first_rows(int64_t n) const {
  if (shape.empty() || n > shape[0]) throw std::out_of_range("first_rows beyond tensor");
  Tensor view = *this;
  view.shape[0] = n;
  return view;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

}  // namespace lorax
