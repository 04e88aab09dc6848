// Desired objects of a LoraxDeployment: pure functions from the custom resource
// (plus operator defaults and the adapters that reference it) to Kubernetes JSON.
// Defaults here mirror the CRD's schema defaults so a resource that skipped
// server-side defaulting builds the same objects.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "controllers/defaults.h"

namespace lorax::op {

using json = nlohmann::json;

// `lorax-engine serve` arguments (after the subcommand) for this spec.
std::vector<std::string> engine_args(const json& ldep, const Defaults& d);
int engine_port(const json& ldep);

// apps/v1 Deployment. `adapters` are the Adapter resources bound to this deployment;
// pvc:// adapter sources add read-only volumes under /adapters/<claim>.
json desired_deployment(const json& ldep, const std::vector<json>& adapters, const Defaults& d);
json desired_service(const json& ldep);
// ConfigMap <name>-adapters with adapters.json: the adapters the engine should know.
json desired_adapter_configmap(const json& ldep, const std::vector<json>& adapters);
json desired_pdb(const json& ldep);
// autoscaling/v2 HPA scaling the LoraxDeployment through its scale subresource; null without spec.autoscaling.
json desired_hpa(const json& ldep);
// monitoring.coreos.com/v1 ServiceMonitor (only applied when that CRD is served).
json desired_service_monitor(const json& ldep);

// Stamps metadata.annotations[lorax.dev/applied-hash] with a hash of the object, so a
// later desired object that dropped a field differs from what was applied.
json with_applied_hash(json obj);
// True when every field of `desired` is present with an equal value in `observed`
// (objects: subset; arrays: same length, element-wise subset; scalars: equal).
bool is_subset(const json& desired, const json& observed);

}  // namespace lorax::op
