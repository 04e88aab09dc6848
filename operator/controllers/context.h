// What the controllers share: the API client, the caches, defaults, metrics.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>

#include "controllers/defaults.h"
#include "kube/client.h"
#include "kube/informer_set.h"
#include "server/metrics/registry.h"

namespace lorax::op {

using json = nlohmann::json;

struct Caches {
  kube::InformerSet* ldeps;
  kube::InformerSet* adapters;
  kube::InformerSet* deployments;  // only those the operator manages (label selector)
  kube::InformerSet* pods;         // only engine pods (label selector)
};

// Remembers for a minute whether the cluster serves ServiceMonitors (prometheus-operator).
class Discovery {
public:
  explicit Discovery(kube::Client& c) : client_(c) {}
  bool has_service_monitors();

private:
  kube::Client& client_;
  std::mutex mu_;
  bool cached_ = false;
  std::chrono::steady_clock::time_point checked_{};
  bool valid_ = false;
};

// How long unloading each deleted Adapter (by uid) has been failing: a pod that keeps
// refusing must not block the Adapter's deletion forever.
class UnloadPatience {
public:
  explicit UnloadPatience(std::chrono::steady_clock::duration patience) : patience_(patience) {}
  // True once unloading `uid` has failed for longer than the patience; forgets it then.
  bool exhausted(const std::string& uid);

private:
  std::chrono::steady_clock::duration patience_;
  std::mutex mu_;
  std::map<std::string, std::chrono::steady_clock::time_point> first_failure_;
};

struct Context {
  kube::Client& client;
  Caches caches;
  Defaults defaults;
  metrics::Registry& registry;
  Discovery discovery;
  UnloadPatience unload_patience{std::chrono::seconds(60)};
};

// Emits a core/v1 Event on `obj` (best effort: failures are logged, never thrown).
void record_event(kube::Client& client, const json& obj, const std::string& type, const std::string& reason,
                  const std::string& message);

// Ready engine pods: Ready condition True, a pod IP, not terminating; sorted by name.
std::vector<json> ready_pods(const Caches& c, const std::string& ns, const std::string& ldep_name);

}  // namespace lorax::op
