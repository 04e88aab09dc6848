// Adapter -> validation, preload on every ready engine pod, per-pod status, and the
// finalizer that unloads it from the pods before the Adapter goes away.
#include <algorithm>
#include <map>

#include "controllers/adapter_plan.h"
#include "controllers/desired.h"
#include "controllers/labels.h"
#include "controllers/model_source.h"
#include "controllers/reconcilers.h"
#include "controllers/status.h"
#include "kube/log.h"

namespace lorax::op {

static bool has_finalizer(const json& a) {
  for (auto& f : a["metadata"].value("finalizers", json::array()))
    if (f == kAdapterFinalizer) return true;
  return false;
}

static std::string pod_url(const json& pod, int port, const std::string& path) {
  return "http://" + pod["status"]["podIP"].get<std::string>() + ":" + std::to_string(port) + path;
}

static int port_of(Context& ctx, const std::string& ns, const std::string& ldep_name) {
  auto l = ctx.caches.ldeps->get(ns, ldep_name);
  return l ? engine_port(*l) : 8080;
}

// Unloads from every ready pod, then drops the finalizer. Unreachable pods are retried a
// while; after ctx.unload_patience the Adapter is released anyway (a gone pod has nothing to unload).
static Result finalize(Context& ctx, json a, const std::string& ns, const std::string& ldep_name) {
  if (!has_finalizer(a)) return {};
  int port = port_of(ctx, ns, ldep_name);
  bool all_ok = true;
  const std::string id = plan_adapter(a, nullptr).id;
  for (auto& pod : ready_pods(ctx.caches, ns, ldep_name)) {
    auto r = kube::http_call("DELETE", pod_url(pod, port, "/adapters/" + kube::url_encode(id)), "", 10);
    if (!(r.status >= 200 && r.status < 300) && r.status != 404) all_ok = false;
  }
  if (!all_ok) {
    const std::string uid = a["metadata"].value("uid", "");
    if (!ctx.unload_patience.exhausted(uid)) return {true, 0};
    kube::log_error("giving up unloading adapter from unreachable pods", {{"uid", uid}});
  }
  json fins = json::array();
  for (auto& f : a["metadata"]["finalizers"])
    if (f != kAdapterFinalizer) fins.push_back(f);
  a["metadata"]["finalizers"] = fins;
  a.erase("status");
  ctx.client.update(kube::resources::kAdapters.item(ns, a["metadata"]["name"]), a);
  record_event(ctx.client, a, "Normal", "Unloaded", "unloaded from engine pods");
  return {};
}

Result reconcile_adapter(Context& ctx, const std::string& key) {
  auto [ns, name] = split_key(key);
  auto cached = ctx.caches.adapters->get(ns, name);
  if (!cached) return {};
  json a = *cached;
  json spec = a.value("spec", json::object());
  std::string ldep_name = spec.value("deploymentRef", json::object()).value("name", "");
  if (a["metadata"].contains("deletionTimestamp")) return finalize(ctx, a, ns, ldep_name);

  auto ldep = ctx.caches.ldeps->get(ns, ldep_name);
  AdapterPlan plan = plan_adapter(a, ldep ? *ldep : json(nullptr));
  std::string reason = plan.reason, invalid = plan.problem;
  if (invalid.empty() && spec.contains("tokenSecretRef") &&
      !adapter_tokens(ctx.client, ns, {a}).count(a["metadata"].value("name", ""))) {
    reason = "SecretNotFound";
    invalid = "Secret " + spec["tokenSecretRef"].value("name", "") + " (key " +
              spec["tokenSecretRef"].value("key", "token") + ") not found in " + ns;
  }
  if (invalid.empty()) {
    for (const auto& other : adapters_of(ctx.caches, ns, ldep_name)) {
      const std::string oname = other["metadata"].value("name", "");
      if (oname < name && !other["metadata"].contains("deletionTimestamp") && plan_adapter(other, *ldep).id == plan.id) {
        reason = "DuplicateId";
        invalid = "Adapter " + oname + " already serves id " + plan.id + " on this deployment";
      }
    }
  }
  const bool preload = plan.preload;
  // Every valid Adapter gets the finalizer: one loaded on first use must be unloaded too.
  if (invalid.empty() && !has_finalizer(a)) {
    json obj = a;
    obj["metadata"]["finalizers"].push_back(kAdapterFinalizer);
    obj.erase("status");
    ctx.client.update(kube::resources::kAdapters.item(ns, name), obj);
    return {};  // the update's watch event brings us back
  }

  // Every ready pod is asked whether it knows the id (its registry, a mounted ConfigMap,
  // may lag the operator by kubelet's sync period); preloaded adapters are then loaded.
  std::map<std::string, PodLoad> pods;
  json old_status = a.value("status", json::object());
  bool same_gen = old_status.value("observedGeneration", -1L) == a["metadata"].value("generation", 0L);
  std::map<std::string, std::string> before;
  for (auto& p : old_status.value("pods", json::array())) before[p.value("pod", "")] = p.value("state", "");
  if (invalid.empty()) {
    int port = engine_port(*ldep);
    const std::string path = "/adapters/" + kube::url_encode(plan.id);
    const std::string done_state = preload ? "Loaded" : "Registered";
    for (auto& pod : ready_pods(ctx.caches, ns, ldep_name)) {
      std::string pname = pod["metadata"]["name"];
      if (same_gen && before[pname] == done_state) {  // already there on this pod: no call
        pods[pname] = {done_state, ""};
        continue;
      }
      auto r = kube::http_call("GET", pod_url(pod, port, path), "", 10);
      json info = json::parse(r.body, nullptr, false);
      // Known once the pod's registry holds this generation of the Adapter (kubelet syncs
      // a mounted ConfigMap within about a minute).
      const bool known = r.status == 200 && info.is_object() && info.value("registered", false) &&
                         info.value("registry_generation", -1L) == plan.generation;
      if (r.status == 404 || (r.status == 200 && !known)) {
        pods[pname] = {"Pending", "the pod has not seen this version in its adapter registry yet"};
        continue;
      }
      if (r.status != 200) {
        pods[pname] = {"Failed", r.status ? "HTTP " + std::to_string(r.status) + ": " + r.body.substr(0, 200) : r.body};
        continue;
      }
      if (!preload) {
        pods[pname] = {done_state, ""};
        continue;
      }
      // Idempotent: answers at once when this version is loaded, replaces an idle older one.
      r = kube::http_call("POST", pod_url(pod, port, "/adapters"), json{{"adapter_id", plan.id}}.dump(), 60);
      if (r.status >= 200 && r.status < 300) {
        pods[pname] = {"Loaded", ""};
        record_event(ctx.client, a, "Normal", "Loaded", "loaded on pod " + pname);
      } else {
        std::string msg = r.status ? "HTTP " + std::to_string(r.status) + ": " + r.body.substr(0, 200) : r.body;
        pods[pname] = {"Failed", msg};
        if (before[pname] != "Failed") record_event(ctx.client, a, "Warning", "LoadFailed", pname + ": " + msg);
      }
    }
  }
  json status = adapter_status(a, reason, invalid, pods, now_rfc3339());
  if (status != old_status) {
    if (!invalid.empty() && condition_status(a, "Failed") != "True")
      record_event(ctx.client, a, "Warning", reason, invalid);
    json obj = a;
    obj["status"] = status;
    ctx.client.update(kube::resources::kAdapters.item(ns, name, "status"), obj);
  }
  bool any_failed = std::any_of(pods.begin(), pods.end(), [](auto& p) { return p.second.state == "Failed"; });
  if (any_failed) return {true, 0};
  bool any_pending = std::any_of(pods.begin(), pods.end(), [](auto& p) { return p.second.state == "Pending"; });
  if (any_pending) return {false, 2000};
  if (!invalid.empty() && (reason == "NotMounted" || reason == "SecretNotFound")) return {false, 30000};
  if (!invalid.empty() && reason == "DeploymentNotFound") return {false, 30000};
  return {};
}

}  // namespace lorax::op
