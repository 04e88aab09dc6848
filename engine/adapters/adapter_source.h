// Where an adapter's two PEFT files come from: a name under --adapter-dir, a local
// path inside the allowed roots, or an HTTP(S) folder (url, hub and s3 all resolve
// to one) downloaded into an on-disk cache. Every source ends as a local directory.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "adapters/peft_adapter.h"

namespace lorax {

// AdapterError subclasses carry the HTTP status the server answers with.
struct AdapterNotFound : AdapterError {  // 404
  using AdapterError::AdapterError;
};
struct AdapterForbidden : AdapterError {  // 403: a path outside the allowed roots
  using AdapterError::AdapterError;
};
int adapter_error_status(const AdapterError& e);  // 404, 403 or 422

// Adapter ids: 1 to 512 characters, printable ASCII without spaces (0x21-0x7E), so an
// id is one file name, URL or hub name and cannot alias another through a NUL or a
// control character. Throws AdapterError (422) otherwise.
inline constexpr size_t kMaxAdapterIdLength = 512;
void check_adapter_id(const std::string& id);

struct AdapterSourceConfig {
  std::string adapter_dir;                 // names without a source resolve here
  std::vector<std::string> roots;          // more roots allowed for `local` paths
  std::string cache_dir;                   // downloads land here
  uint64_t max_bytes = 1ull << 30;         // per adapter download (both files)
  std::string hub_endpoint = "https://huggingface.co";  // + /ORG/NAME/resolve/main/
  std::string s3_endpoint = "https://s3.amazonaws.com";  // + /BUCKET/KEY/ (path style)
  int timeout_s = 60;
  // --adapter-url-allow: hosts (HOST[:PORT]) and CIDRs downloads may reach beside
  // public addresses and the two endpoints above (url_policy.h).
  std::vector<std::string> url_allow;
  // Set when the server stops: downloads in flight give up instead of running to their timeout.
  std::shared_ptr<std::atomic<bool>> cancelled;
};

struct MergeSpec;  // adapter_merge.h

struct AdapterRequest {
  AdapterRequest(std::string id_ = "", std::string source_ = "", std::string api_token_ = "", std::string sha256_ = "")
      : id(std::move(id_)), source(std::move(source_)), api_token(std::move(api_token_)), sha256(std::move(sha256_)) {}
  std::string id;
  std::string source;     // "", "local", "url", "hub", "s3"
  std::string api_token;  // sent as a bearer token on downloads
  std::string sha256;     // of adapter_model.safetensors; also `#sha256=` on URLs
  // Where to load from when it is not the id itself: a registered adapter
  // (adapter_registry.h) is named by its id and loaded from here.
  std::string location;
  bool registered = false;
  // A merged adapter (LoRAX merged_adapters): built from these sources, not loaded from `where()`.
  std::shared_ptr<const MergeSpec> merge;
  const std::string& where() const { return location.empty() ? id : location; }
};

// A local directory holding adapter_config.json and adapter_model.safetensors.
// Throws AdapterNotFound / AdapterForbidden / AdapterError.
std::string resolve_adapter_dir(const AdapterRequest& req, const AdapterSourceConfig& cfg);

}  // namespace lorax
