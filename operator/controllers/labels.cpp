#include "controllers/labels.h"

namespace lorax::op {

json selector_labels(const std::string& ldep_name) {
  return {{"app.kubernetes.io/name", "lorax-engine"}, {"app.kubernetes.io/instance", ldep_name}};
}

json object_labels(const std::string& ldep_name) {
  json l = selector_labels(ldep_name);
  l["app.kubernetes.io/managed-by"] = "lorax-operator";
  l["app.kubernetes.io/component"] = "engine";
  l[kDeploymentLabel] = ldep_name;
  return l;
}

std::string selector_string(const std::string& ldep_name) {
  std::string out;
  const json labels = selector_labels(ldep_name);
  for (auto& [k, v] : labels.items()) {  // nlohmann sorts keys: stable output
    if (!out.empty()) out += ',';
    out += k + "=" + v.get<std::string>();
  }
  return out;
}

json controller_ref(const json& owner) {
  return {{"apiVersion", owner.at("apiVersion")},
          {"kind", owner.at("kind")},
          {"name", owner.at("metadata").at("name")},
          {"uid", owner.at("metadata").value("uid", "")},
          {"controller", true},
          {"blockOwnerDeletion", true}};
}

json owned_object(const char* api_version, const char* kind, const std::string& name, const json& owner) {
  const json& m = owner.at("metadata");
  std::string ldep = m.at("name");
  return {{"apiVersion", api_version},
          {"kind", kind},
          {"metadata",
           {{"name", name},
            {"namespace", m.value("namespace", "default")},
            {"labels", object_labels(ldep)},
            {"ownerReferences", json::array({controller_ref(owner)})}}}};
}

std::string adapter_configmap_name(const std::string& ldep_name) { return ldep_name + "-adapters"; }
std::string adapter_token_secret_name(const std::string& ldep_name) { return ldep_name + "-adapter-tokens"; }

std::string service_host(const json& ldep) {
  const json& m = ldep.at("metadata");
  return m.at("name").get<std::string>() + "." + m.value("namespace", "default") + ".svc";
}

}  // namespace lorax::op
