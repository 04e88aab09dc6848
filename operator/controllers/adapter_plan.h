// What an Adapter becomes on its deployment's engine pods (DESIGN.md §4): the id
// clients name it by (spec.adapterId, else metadata.name) on every pod whatever its
// source, and the entry of the pods' adapter registry (engine --adapter-registry)
// saying where that id loads from. pvc:// and file:// adapters must lie on volumes
// the LoraxDeployment already mounts (spec.adapters.claims / hostPaths): adding an
// Adapter never changes the pod template, so it never restarts a pod.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace lorax::op {

using json = nlohmann::json;

struct AdapterPlan {
  std::string id;        // what clients send as adapter_id / OpenAI model
  std::string source;    // engine adapter_source: hub | url | local
  std::string location;  // hub ORG/NAME, URL, or the path inside the pod
  std::string sha256;
  std::string token_key;  // key in the deployment's adapter-token Secret ("" without spec.tokenSecretRef)
  bool preload = false;
  long generation = 0;  // the Adapter's metadata.generation: which version a pod's registry holds
  // Why the Adapter cannot be served as it stands ("" when it can): a condition reason and a message.
  std::string reason, problem;
};

// `ldep` is the Adapter's LoraxDeployment, or null when it does not exist.
AdapterPlan plan_adapter(const json& adapter, const json& ldep);

// The registry entry (engine/adapters/adapter_registry.h) for a servable plan.
json registry_entry(const AdapterPlan& p);

inline constexpr const char* kAdapterTokenDir = "/etc/lorax/adapter-tokens";
inline constexpr const char* kAdapterRegistryDir = "/etc/lorax/adapters";

}  // namespace lorax::op
