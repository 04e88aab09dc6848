// Memory-mapped safetensors checkpoints: one file, or shards listed in
// model.safetensors.index.json. Tensors are converted to float32 on request.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace lorax {

struct TensorInfo {
  std::string name;
  std::string file;  // file it lives in, for error messages
  std::string dtype;  // "F32" | "F16" | "BF16" | ...
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // null when the file was opened without mapping its data
  size_t nbytes = 0;
  uint64_t file_offset = 0;  // where the tensor's bytes start in `file`
};

class MappedFile;

class SafetensorsFile {
 public:
  // `map_data` false reads only the header (tensors are then read with pread from
  // file_offset: a file that shrinks meanwhile gives a short read, not a SIGBUS).
  explicit SafetensorsFile(const std::string& path, bool map_data = true);
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }

 private:
  std::shared_ptr<MappedFile> map_;
  std::map<std::string, TensorInfo> tensors_;
};

// All tensors of a checkpoint (single file or shards).
class Checkpoint {
 public:
  // `dir` holds model.safetensors or model.safetensors.index.json (or, for
  // adapters, `file` names the one file directly).
  static Checkpoint open_dir(const std::string& dir, const std::string& stem = "model");
  static Checkpoint open_file(const std::string& file, bool map_data = true);

  bool has(const std::string& name) const { return index_.count(name) > 0; }
  const TensorInfo& info(const std::string& name) const;
  std::vector<std::string> names() const;
  // Copy into float32, checking the element type is F32/F16/BF16.
  std::vector<float> read_f32(const std::string& name) const;

 private:
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorInfo*> index_;
};

float half_to_float(uint16_t h);
float bf16_to_float(uint16_t b);

}  // namespace lorax
