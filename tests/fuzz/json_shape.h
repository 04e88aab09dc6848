// Nesting depth and widest container of a parsed JSON value, without recursion
// (the fuzz targets check json_limit_problem's verdict against the parse).
#pragma once
#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

namespace lorax_fuzz {

struct JsonShape {
  int depth = 0;          // containers nested, 0 for a scalar
  size_t max_members = 0;  // most elements of one object or array
};

template <typename Json>
JsonShape json_shape(const Json& root) {
  JsonShape out;
  std::vector<std::pair<const Json*, int>> stack{{&root, 1}};
  while (!stack.empty()) {
    auto [v, level] = stack.back();
    stack.pop_back();
    if (!v->is_structured()) continue;
    out.depth = std::max(out.depth, level);
    out.max_members = std::max(out.max_members, v->size());
    for (const auto& child : *v) stack.push_back({&child, level + 1});
  }
  return out;
}

}  // namespace lorax_fuzz
