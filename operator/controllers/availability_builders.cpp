#include "controllers/desired.h"
#include "controllers/labels.h"

namespace lorax::op {

json desired_pdb(const json& ldep) {
  std::string name = ldep.at("metadata").at("name");
  json obj = owned_object("policy/v1", "PodDisruptionBudget", name, ldep);
  // One engine pod at a time: a voluntary eviction never takes down more than one shard group.
  obj["spec"] = {{"maxUnavailable", 1}, {"selector", {{"matchLabels", selector_labels(name)}}}};
  return obj;
}

json desired_hpa(const json& ldep) {
  const json& spec = ldep.at("spec");
  if (!spec.contains("autoscaling") || spec["autoscaling"].is_null()) return nullptr;
  const json& as = spec["autoscaling"];
  std::string name = ldep.at("metadata").at("name");
  json obj = owned_object("autoscaling/v2", "HorizontalPodAutoscaler", name, ldep);
  // Targets the LoraxDeployment (scale subresource), so spec.replicas stays the one source of truth.
  obj["spec"] = {
      {"scaleTargetRef", {{"apiVersion", kApiVersion}, {"kind", "LoraxDeployment"}, {"name", name}}},
      {"minReplicas", as.value("minReplicas", 1)},
      {"maxReplicas", as.at("maxReplicas")},
      {"metrics",
       {{{"type", "Pods"},
         {"pods",
          {{"metric", {{"name", "lorax_queue_size"}}},
           {"target", {{"type", "AverageValue"}, {"averageValue", std::to_string(as.value("targetQueueSize", 10))}}}}}}}}};
  return obj;
}

}  // namespace lorax::op
