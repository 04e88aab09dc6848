// LoraxDeployment -> Deployment, Service, adapter ConfigMap, PDB, HPA, ServiceMonitor + status.
#include "controllers/applier.h"
#include "controllers/desired.h"
#include "controllers/labels.h"
#include "controllers/reconcilers.h"
#include "controllers/status.h"
#include "kube/log.h"

namespace lorax::op {

std::pair<std::string, std::string> split_key(const std::string& key) {
  auto slash = key.find('/');
  return {key.substr(0, slash), key.substr(slash + 1)};
}

std::vector<json> adapters_of(const Caches& c, const std::string& ns, const std::string& ldep_name) {
  std::vector<json> out;
  for (auto& a : c.adapters->list(ns))
    if (a.value("spec", json::object()).value("deploymentRef", json::object()).value("name", "") == ldep_name)
      out.push_back(a);
  return out;
}

AdapterTokens adapter_tokens(kube::Client& client, const std::string& ns, const std::vector<json>& adapters) {
  AdapterTokens out;
  for (const auto& a : adapters) {
    const json spec = a.value("spec", json::object());
    if (!spec.contains("tokenSecretRef") || a["metadata"].contains("deletionTimestamp")) continue;
    const json& ref = spec["tokenSecretRef"];
    try {
      json secret = client.get(kube::resources::kSecrets.item(ns, ref.value("name", "")));
      const json data = secret.value("data", json::object());
      const std::string key = ref.value("key", "token");
      if (data.contains(key) && data[key].is_string()) out[a["metadata"].value("name", "")] = data[key];
    } catch (const kube::ApiError& e) {
      if (e.status != 404) throw;  // missing: the Adapter reports SecretNotFound and stays out of the registry
    }
  }
  return out;
}

static const char* verb(ApplyOutcome o) { return o == ApplyOutcome::Created ? "Created" : "Updated"; }

Result reconcile_deployment(Context& ctx, const std::string& key) {
  auto [ns, name] = split_key(key);
  auto cached = ctx.caches.ldeps->get(ns, name);
  if (!cached) return {};  // deleted: owned objects go with it (ownerReferences + garbage collector)
  json ldep = *cached;
  if (ldep["metadata"].contains("deletionTimestamp")) return {};
  std::vector<json> adapters = adapters_of(ctx.caches, ns, name);
  std::string uid = ldep["metadata"].value("uid", "");

  std::string error;
  json dep_observed = nullptr;
  const std::string invalid = spec_problem(ldep);
  try {
    if (!invalid.empty()) throw std::invalid_argument(invalid);  // reported as Degraded: nothing is rolled out
    const AdapterTokens tokens = adapter_tokens(ctx.client, ns, adapters);
    std::vector<json> desired = {desired_service(ldep), desired_adapter_configmap(ldep, adapters, tokens),
                                 desired_adapter_token_secret(ldep, tokens), desired_pdb(ldep)};
    if (ctx.discovery.has_service_monitors()) desired.push_back(desired_service_monitor(ldep));
    json hpa = desired_hpa(ldep);
    if (!hpa.is_null()) desired.push_back(hpa);
    // The Deployment comes from the informer cache; the rest are read on demand.
    Applied dep = ensure_applied(ctx.client, desired_deployment(ldep, ctx.defaults),
                                 ctx.caches.deployments->get(ns, name), true);
    dep_observed = dep.object;
    if (dep.outcome != ApplyOutcome::Unchanged)
      record_event(ctx.client, ldep, "Normal", verb(dep.outcome), std::string(verb(dep.outcome)) + " Deployment " + name);
    for (const auto& d : desired) {
      Applied a = ensure_applied(ctx.client, d);
      if (a.outcome != ApplyOutcome::Unchanged)
        record_event(ctx.client, ldep, "Normal", verb(a.outcome),
                     std::string(verb(a.outcome)) + " " + d["kind"].get<std::string>() + " " +
                         d["metadata"]["name"].get<std::string>());
    }
    if (hpa.is_null() && delete_if_owned(ctx.client, "autoscaling/v2", "HorizontalPodAutoscaler", ns, name, uid))
      record_event(ctx.client, ldep, "Normal", "Deleted", "Deleted HorizontalPodAutoscaler " + name);
  } catch (const std::exception& e) {
    error = e.what();
    kube::log_error("reconcile LoraxDeployment", {{"key", key}, {"error", error}});
  }

  json status = ldep_status(ldep, dep_observed, adapters, error, now_rfc3339());
  json old = ldep.value("status", json::object());
  if (status != old) {
    bool was_available = condition_status(ldep, "Available") == "True";
    json obj = ldep;
    obj["status"] = status;
    // PUT carries our cached resourceVersion: a stale cache gives 409 and a retry.
    ctx.client.update(kube::resources::kLoraxDeployments.item(ns, name, "status"), obj);
    bool now_available = condition_status(obj, "Available") == "True";
    if (was_available != now_available)
      record_event(ctx.client, ldep, now_available ? "Normal" : "Warning", now_available ? "Available" : "Unavailable",
                   status["conditions"][0].value("message", ""));
    if (!error.empty()) record_event(ctx.client, ldep, "Warning", "ReconcileError", error);
  }
  if (!error.empty()) return {true, 0};
  return {};
}

}  // namespace lorax::op
