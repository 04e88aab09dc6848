// Desired objects of a LoraxDeployment: pure functions from the custom resource
// (plus operator defaults and the adapters that reference it) to Kubernetes JSON.
// Defaults here mirror the CRD's schema defaults so a resource that skipped
// server-side defaulting builds the same objects.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "controllers/defaults.h"

namespace lorax::op {

using json = nlohmann::json;

// Why the engine would refuse this spec at start ("" when it would not): the same
// combinations the CRD's CEL rules reject, for objects stored before those rules.
std::string spec_problem(const json& ldep);
// `lorax-engine serve` arguments (after the subcommand) for this spec.
std::vector<std::string> engine_args(const json& ldep, const Defaults& d);
// The --model arguments (with the cache, revision and hub of an hf:// model), shared by
// `serve` and the fetch-model init container's `download`.
std::vector<std::string> model_fetch_args(const json& ldep);
inline constexpr const char* kModelCacheDir = "/data/models";
int engine_port(const json& ldep);

// apps/v1 Deployment. The pod template depends on the LoraxDeployment alone (never on its
// Adapters): spec.adapters.claims / hostPaths are the adapter volumes, the registry
// ConfigMap and the token Secret are mounted whatever they hold.
json desired_deployment(const json& ldep, const Defaults& d);
json desired_service(const json& ldep);
// Adapter tokens by key (the Adapter's name): base64 values copied from the Secrets
// that Adapters name in spec.tokenSecretRef.
using AdapterTokens = std::map<std::string, std::string>;
// ConfigMap <name>-adapters with adapters.json: the engine pods' adapter registry.
json desired_adapter_configmap(const json& ldep, const std::vector<json>& adapters, const AdapterTokens& tokens);
// Secret <name>-adapter-tokens, mounted at /etc/lorax/adapter-tokens on every pod.
json desired_adapter_token_secret(const json& ldep, const AdapterTokens& tokens);
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
