// Writes small safetensors files for tests of the loaders' checks (shapes,
// dtypes, truncation): zero-filled tensors, or F32 ones with given values.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lorax::testing {

struct TensorSpec {
  std::string name;
  std::string dtype;  // "F32", "BF16", "F16", "I32"
  std::vector<int64_t> shape;
  std::vector<float> values = {};  // F32 only; empty: zeros
};

// `truncate_by` bytes are cut off the end, as a partly copied file would be.
inline void write_safetensors(const std::filesystem::path& path, const std::vector<TensorSpec>& tensors,
                              size_t truncate_by = 0) {
  nlohmann::json header = nlohmann::json::object();
  size_t offset = 0;
  for (const auto& t : tensors) {
    size_t n = 1;
    for (auto d : t.shape) n *= static_cast<size_t>(d);
    const size_t bytes = n * (t.dtype == "F32" || t.dtype == "I32" ? 4 : 2);
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  const std::string h = header.dump();
  const uint64_t len = h.size();
  std::string blob(reinterpret_cast<const char*>(&len), 8);
  blob += h;
  std::string data(offset, '\0');
  size_t at = 0;
  for (const auto& t : tensors) {
    if (!t.values.empty()) std::memcpy(data.data() + at, t.values.data(), t.values.size() * sizeof(float));
    at += static_cast<size_t>(header[t.name]["data_offsets"][1].get<size_t>() - header[t.name]["data_offsets"][0].get<size_t>());
  }
  blob += data;
  blob.resize(blob.size() - truncate_by);
  std::ofstream(path, std::ios::binary) << blob;
}

}  // namespace lorax::testing
