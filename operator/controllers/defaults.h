// Operator-wide defaults the desired objects fall back on (from the config file).
#pragma once

#include <string>

namespace lorax::op {

struct Defaults {
  // The engine of the same release (a floating tag could not be pinned by a rollout).
  std::string engine_image = std::string("ghcr.io/lorax-plus/lorax-engine:") + LORAX_VERSION;
  std::string image_pull_policy = "IfNotPresent";
  int max_active_adapters = 0;  // 0: leave the engine's own default
  int max_loaded_adapters = 0;
  std::string shm_size = "1Gi";        // /dev/shm emptyDir (Memory) size limit
  std::string hf_cache_size = "50Gi";  // emptyDir for hf:// downloads
};

}  // namespace lorax::op
