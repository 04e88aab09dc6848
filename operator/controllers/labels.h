// Names, labels and owner references shared by every object built from a LoraxDeployment.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace lorax::op {

using json = nlohmann::json;

inline constexpr const char* kGroup = "lorax.dev";
inline constexpr const char* kApiVersion = "lorax.dev/v1alpha1";
inline constexpr const char* kFieldManager = "lorax-operator";
inline constexpr const char* kAppliedHashAnnotation = "lorax.dev/applied-hash";
inline constexpr const char* kDeploymentLabel = "lorax.dev/deployment";
inline constexpr const char* kAdapterFinalizer = "lorax.dev/adapter-unload";

// matchLabels of the engine pods of one LoraxDeployment.
json selector_labels(const std::string& ldep_name);
// selector_labels plus the common app.kubernetes.io labels.
json object_labels(const std::string& ldep_name);
// "k=v,k2=v2" form of selector_labels (status.selector for the scale subresource).
std::string selector_string(const std::string& ldep_name);
// A controller ownerReference to this object (apiVersion/kind/name/uid).
json controller_ref(const json& owner);
// apiVersion, kind, metadata {name, namespace, labels, ownerReferences} for an owned object.
json owned_object(const char* api_version, const char* kind, const std::string& name, const json& owner);

std::string adapter_configmap_name(const std::string& ldep_name);
std::string adapter_token_secret_name(const std::string& ldep_name);
std::string service_host(const json& ldep);  // <name>.<ns>.svc

}  // namespace lorax::op
