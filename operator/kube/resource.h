// REST paths of Kubernetes resources.
#pragma once

#include <string>

namespace lorax::kube {

struct Resource {
  std::string group;  // "" for the core group
  std::string version;
  std::string plural;
  bool namespaced = true;

  std::string api_prefix() const { return group.empty() ? "/api/" + version : "/apis/" + group + "/" + version; }
  // Collection path; ns "" means all namespaces.
  std::string collection(const std::string& ns) const {
    return api_prefix() + (namespaced && !ns.empty() ? "/namespaces/" + ns : "") + "/" + plural;
  }
  std::string item(const std::string& ns, const std::string& name, const std::string& sub = "") const {
    return collection(ns) + "/" + name + (sub.empty() ? "" : "/" + sub);
  }
};

namespace resources {
inline const Resource kLoraxDeployments{"lorax.dev", "v1alpha1", "loraxdeployments"};
inline const Resource kAdapters{"lorax.dev", "v1alpha1", "adapters"};
inline const Resource kDeployments{"apps", "v1", "deployments"};
inline const Resource kPods{"", "v1", "pods"};
inline const Resource kServices{"", "v1", "services"};
inline const Resource kConfigMaps{"", "v1", "configmaps"};
inline const Resource kSecrets{"", "v1", "secrets"};
inline const Resource kEvents{"", "v1", "events"};
inline const Resource kPdbs{"policy", "v1", "poddisruptionbudgets"};
inline const Resource kHpas{"autoscaling", "v2", "horizontalpodautoscalers"};
inline const Resource kServiceMonitors{"monitoring.coreos.com", "v1", "servicemonitors"};
inline const Resource kLeases{"coordination.k8s.io", "v1", "leases"};
}  // namespace resources

// Resource for an object's apiVersion + kind (only the kinds the operator writes).
Resource resource_for(const std::string& api_version, const std::string& kind);

// Percent-encodes a query parameter value or a path segment.
std::string url_encode(const std::string& s);

}  // namespace lorax::kube
