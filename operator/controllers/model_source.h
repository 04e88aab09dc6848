// Parses the source URIs of LoraxDeployment models and Adapters (DESIGN.md §4).
#pragma once

#include <string>

namespace lorax::op {

enum class SourceKind { HuggingFace, Pvc, File, Https };

struct Source {
  SourceKind kind;
  std::string repo;   // hf: org/name; https: the whole URL
  std::string claim;  // pvc: claim name
  std::string path;   // pvc: path inside the claim (may be empty); file: absolute path
};

// Throws std::invalid_argument with a one-line reason.
Source parse_source(const std::string& uri, bool allow_https);

// The engine's POST /adapters body fields for an Adapter source:
// hf -> ("org/name", "hub"), https -> (url, "url"), file -> (path, "local"),
// pvc -> ("/adapters/<claim>/<path>", "local"), mounted there by the Deployment.
struct EngineAdapterRef {
  std::string adapter_id;
  std::string adapter_source;
};
EngineAdapterRef engine_adapter_ref(const std::string& uri);

inline constexpr const char* kAdapterMountRoot = "/adapters";

}  // namespace lorax::op
