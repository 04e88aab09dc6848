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

inline constexpr const char* kAdapterMountRoot = "/adapters";

}  // namespace lorax::op
