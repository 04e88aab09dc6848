// SHA-256 (OpenSSL) as lower-case hex, incrementally or of a file.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace lorax {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t n);
  std::string hex();  // finishes; call once

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

std::string sha256_hex(const std::string& text);
// Throws std::runtime_error when the file cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace lorax
