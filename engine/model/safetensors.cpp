#include "model/safetensors.h"

#include "common/json_integer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "model/model_spec.h"

namespace lorax {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY);
    if (fd_ < 0) throw ModelError(path + ": cannot open (" + std::strerror(errno) + ")");
    struct stat st{};
    if (::fstat(fd_, &st) != 0) throw ModelError(path + ": cannot stat");
    size_ = static_cast<size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
      if (p == MAP_FAILED) throw ModelError(path + ": mmap failed");
      data_ = static_cast<const uint8_t*>(p);
    }
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
    if (fd_ >= 0) ::close(fd_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  std::string path_;
  int fd_ = -1;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

namespace {

size_t element_size(const std::string& dtype) {
  static const std::map<std::string, size_t> sizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4},
      {"I16", 2}, {"I8", 1},  {"U8", 1},  {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

}  // namespace

namespace {

// The header of an unmapped file, read with pread.
std::string read_header(const std::string& path, size_t& file_size) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw ModelError(path + ": cannot open (" + std::strerror(errno) + ")");
  struct stat st{};
  std::string header;
  bool ok = ::fstat(fd, &st) == 0;
  file_size = ok ? static_cast<size_t>(st.st_size) : 0;
  uint64_t header_len = 0;
  if (ok && file_size >= 8 && ::pread(fd, &header_len, 8, 0) == 8 && header_len <= file_size - 8) {
    header.resize(header_len);
    ok = ::pread(fd, header.data(), header_len, 8) == static_cast<ssize_t>(header_len);
  }
  ::close(fd);
  if (!ok) throw ModelError(path + ": cannot read");
  if (file_size < 8) throw ModelError(path + ": truncated safetensors file (no header)");
  if (header_len > file_size - 8)
    throw ModelError(path + ": truncated safetensors file (header length " + std::to_string(header_len) +
                     " exceeds file size)");
  return header;
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path, bool map_data) {
  size_t size = 0;
  std::string unmapped_header;
  uint64_t header_len = 0;
  if (map_data) {
    map_ = std::make_shared<MappedFile>(path);
    size = map_->size();
    if (size < 8) throw ModelError(path + ": truncated safetensors file (no header)");
    std::memcpy(&header_len, map_->data(), 8);
    if (header_len > size - 8) throw ModelError(path + ": truncated safetensors file (header length " +
                                                std::to_string(header_len) + " exceeds file size)");
  } else {
    unmapped_header = read_header(path, size);
    header_len = unmapped_header.size();
  }
  const char* header_text = map_data ? reinterpret_cast<const char*>(map_->data()) + 8 : unmapped_header.data();
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(header_text, header_text + header_len);
  } catch (const nlohmann::json::exception&) {
    throw ModelError(path + ": corrupt safetensors header (invalid JSON)");
  }
  if (!header.is_object()) throw ModelError(path + ": corrupt safetensors header");
  const uint8_t* base = map_data ? map_->data() + 8 + header_len : nullptr;
  const size_t data_size = size - 8 - header_len;
  for (auto& [name, meta] : header.items()) {
    if (name == "__metadata__") continue;
    try {
      TensorInfo info;
      info.name = name;
      info.file = path;
      info.dtype = meta.at("dtype").get<std::string>();
      // Non-negative integers only (a float 4.6e24 was an undefined cast to int64; UBSan, fuzzing).
      for (const auto* field : {"shape", "data_offsets"})
        for (const auto& v : meta.at(field))
          if (!json_integer_in(v, 0, INT64_MAX))
            throw ModelError(path + ": tensor '" + name + "' has a " + field + " entry that is not a non-negative integer");
      info.shape = meta.at("shape").get<std::vector<int64_t>>();
      auto offsets = meta.at("data_offsets").get<std::vector<uint64_t>>();
      if (offsets.size() != 2 || offsets[0] > offsets[1])
        throw ModelError(path + ": tensor '" + name + "' has bad data_offsets");
      if (offsets[1] > data_size)
        throw ModelError(path + ": truncated safetensors file (tensor '" + name + "' ends past the end of the file)");
      size_t esize = element_size(info.dtype);
      if (esize == 0) throw ModelError(path + ": tensor '" + name + "' has unknown dtype " + info.dtype);
      // Checked: a shape whose byte size overflows must not wrap around to the stored size.
      uint64_t bytes = esize;
      bool overflow = false, empty = false;
      for (auto d : info.shape) {
        if (d < 0) throw ModelError(path + ": tensor '" + name + "' has a negative dimension");
        empty |= d == 0;
        overflow |= __builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes);
      }
      if (empty) bytes = 0, overflow = false;
      info.nbytes = offsets[1] - offsets[0];
      if (overflow || info.nbytes != bytes)
        throw ModelError(path + ": tensor '" + name + "' byte size does not match its shape and dtype");
      info.data = base ? base + offsets[0] : nullptr;
      info.file_offset = 8 + header_len + offsets[0];
      tensors_[name] = std::move(info);
    } catch (const nlohmann::json::exception&) {
      throw ModelError(path + ": corrupt safetensors header entry for '" + name + "'");
    }
  }
}

Checkpoint Checkpoint::open_file(const std::string& file, bool map_data) {
  Checkpoint ckpt;
  auto f = std::make_shared<SafetensorsFile>(file, map_data);
  ckpt.files_.push_back(f);
  for (auto& [name, info] : f->tensors()) ckpt.index_[name] = &info;
  return ckpt;
}

Checkpoint Checkpoint::open_dir(const std::string& dir, const std::string& stem) {
  namespace fs = std::filesystem;
  fs::path single = fs::path(dir) / (stem + ".safetensors");
  fs::path index = fs::path(dir) / (stem + ".safetensors.index.json");
  if (fs::exists(single)) return open_file(single.string());
  if (!fs::exists(index)) {
    if (fs::exists(fs::path(dir) / "pytorch_model.bin"))
      throw ModelError(dir + ": only pytorch_model.bin found; pickled checkpoints are not loaded, convert to safetensors");
    throw ModelError(dir + ": no " + single.filename().string() + " or " + index.filename().string());
  }
  std::ifstream in(index);
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception&) {
    throw ModelError(index.string() + ": invalid JSON");
  }
  if (!j.contains("weight_map") || !j["weight_map"].is_object())
    throw ModelError(index.string() + ": missing weight_map");
  Checkpoint ckpt;
  std::map<std::string, std::shared_ptr<SafetensorsFile>> shards;
  for (auto& [name, file] : j["weight_map"].items()) {
    if (!file.is_string()) throw ModelError(index.string() + ": weight_map entry for '" + name + "' is not a file name");
    std::string fname = file.get<std::string>();
    if (fname.find('/') != std::string::npos) throw ModelError(index.string() + ": shard name '" + fname + "' must be a plain file name");
    auto& shard = shards[fname];
    if (!shard) {
      shard = std::make_shared<SafetensorsFile>((fs::path(dir) / fname).string());
      ckpt.files_.push_back(shard);
    }
    auto it = shard->tensors().find(name);
    if (it == shard->tensors().end())
      throw ModelError((fs::path(dir) / fname).string() + ": tensor '" + name + "' listed in the index is missing");
    ckpt.index_[name] = &it->second;
  }
  return ckpt;
}

const TensorInfo& Checkpoint::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw ModelError("checkpoint: missing tensor '" + name + "'");
  return *it->second;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (auto& [name, _] : index_) out.push_back(name);
  return out;
}

float half_to_float(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ff;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bf16_to_float(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

std::vector<float> Checkpoint::read_f32(const std::string& name) const {
  const TensorInfo& t = info(name);
  if (!t.data) throw ModelError(t.file + ": opened without mapping its data; tensor '" + name + "' cannot be read here");
  size_t n = t.nbytes / element_size(t.dtype);
  std::vector<float> out(n);
  if (t.dtype == "F32") {
    if (n > 0) std::memcpy(out.data(), t.data, t.nbytes);  // an empty vector's data() may be null
  } else if (t.dtype == "F16" || t.dtype == "BF16") {
    const bool half = t.dtype == "F16";
    for (size_t i = 0; i < n; ++i) {
      uint16_t v;
      std::memcpy(&v, t.data + 2 * i, 2);
      out[i] = half ? half_to_float(v) : bf16_to_float(v);
    }
  } else {
    throw ModelError(t.file + ": tensor '" + name + "' has dtype " + t.dtype + "; expected F32, F16 or BF16");
  }
  return out;
}

}  // namespace lorax
