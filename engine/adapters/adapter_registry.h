// --adapter-registry FILE: the adapters the operator declared for this deployment
// (the <deployment>-adapters ConfigMap, mounted into every engine pod), so clients
// name an adapter by its Adapter id whatever its source, on every pod, and a new
// Adapter needs no pod restart: kubelet updates the mounted file in place and the
// registry re-reads it when its modification time changes (checked at most once a
// second). A request whose adapter_source is empty and whose id is registered loads
// from the registered source, with the registered sha256 and token.
//
// File: a JSON array of {"id", "source": "hub"|"url"|"s3"|"local", "location",
// "sha256"?, "token_file"?, "preload"?, "generation"?} (generation: the Adapter's
// metadata.generation, echoed by GET /adapters/{id} so the operator knows which
// version a pod sees). A file that fails to parse keeps the last
// good list (the error is printed once per change).
#pragma once
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "adapters/adapter_source.h"

namespace lorax {

class AdapterRegistry {
 public:
  // Throws AdapterError when the file cannot be read or parsed at start.
  explicit AdapterRegistry(std::string path);

  // The request for a registered id (source, location, sha256, token), or nullopt.
  std::optional<AdapterRequest> lookup(const std::string& id);
  std::vector<std::string> ids();
  std::vector<std::string> preloaded_ids();  // entries with "preload": true
  // The entry's "generation" (-1 when it has none); nullopt when `id` is not registered.
  std::optional<long long> generation(const std::string& id);
  const std::string& path() const { return path_; }

 private:
  struct Entry {
    AdapterRequest req;
    std::string token_file;
    long long generation = -1;
    bool preload = false;
  };
  void refresh_locked(bool at_start);
  static std::map<std::string, Entry> parse(const std::string& text);

  std::string path_;
  std::mutex mu_;
  std::map<std::string, Entry> entries_;
  std::filesystem::file_time_type mtime_{};
  std::chrono::steady_clock::time_point checked_{};
};

}  // namespace lorax
