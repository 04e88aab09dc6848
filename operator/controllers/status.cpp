#include "controllers/status.h"

#include <ctime>

#include "controllers/desired.h"
#include "controllers/labels.h"

namespace lorax::op {

std::string now_rfc3339() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

json set_condition(json conditions, const std::string& type, bool status, const std::string& reason,
                   const std::string& message, long generation, const std::string& now) {
  if (!conditions.is_array()) conditions = json::array();
  std::string s = status ? "True" : "False";
  json c = {{"type", type}, {"status", s}, {"reason", reason}, {"message", message},
            {"observedGeneration", generation}, {"lastTransitionTime", now}};
  for (auto& old : conditions) {
    if (old.value("type", "") != type) continue;
    if (old.value("status", "") == s && old.contains("lastTransitionTime")) c["lastTransitionTime"] = old["lastTransitionTime"];
    old = c;
    return conditions;
  }
  conditions.push_back(c);
  return conditions;
}

std::string condition_status(const json& obj, const std::string& type) {
  if (!obj.contains("status") || !obj["status"].contains("conditions")) return "";
  for (const auto& c : obj["status"]["conditions"])
    if (c.value("type", "") == type) return c.value("status", "");
  return "";
}

static bool deployment_condition(const json& dep, const char* type, const char* status, const char* reason = nullptr) {
  for (const auto& c : dep.value("status", json::object()).value("conditions", json::array()))
    if (c.value("type", "") == type && c.value("status", "") == status && (!reason || c.value("reason", "") == reason))
      return true;
  return false;
}

json ldep_status(const json& ldep, const json& deployment, const std::vector<json>& adapters,
                 const std::string& error, const std::string& now) {
  const json& meta = ldep.at("metadata");
  long gen = meta.value("generation", 0L);
  int desired = ldep.at("spec").value("replicas", 1);
  json old = ldep.value("status", json::object());
  json conds = old.value("conditions", json::array());
  json st = {{"observedGeneration", gen}, {"selector", selector_string(meta.at("name"))},
             {"endpoint", "http://" + service_host(ldep) + ":" +
                              std::to_string(ldep.at("spec").value("service", json::object()).value("port", 80))}};
  int replicas = 0, ready = 0, updated = 0;
  bool dep_current = false;
  if (deployment.is_object()) {
    json ds = deployment.value("status", json::object());
    replicas = ds.value("replicas", 0);
    ready = ds.value("readyReplicas", 0);
    updated = ds.value("updatedReplicas", 0);
    dep_current = ds.value("observedGeneration", 0L) >= deployment["metadata"].value("generation", 0L);
  }
  st["replicas"] = replicas;
  st["readyReplicas"] = ready;

  std::string counts = std::to_string(ready) + "/" + std::to_string(desired) + " engine pods ready";
  if (desired == 0) conds = set_condition(conds, "Available", true, "ScaledToZero", "0 replicas requested", gen, now);
  else if (ready >= desired) conds = set_condition(conds, "Available", true, "MinimumReplicasAvailable", counts, gen, now);
  else conds = set_condition(conds, "Available", false, "WaitingForReplicas", counts, gen, now);

  bool rolling = !deployment.is_object() || !dep_current || updated < desired || ready < desired || replicas > desired;
  conds = rolling ? set_condition(conds, "Progressing", true, "RollingOut", counts, gen, now)
                  : set_condition(conds, "Progressing", false, "RolloutComplete", counts, gen, now);

  if (!error.empty()) conds = set_condition(conds, "Degraded", true, "ReconcileError", error, gen, now);
  else if (deployment.is_object() && deployment_condition(deployment, "ReplicaFailure", "True"))
    conds = set_condition(conds, "Degraded", true, "ReplicaFailure", "engine pods cannot be created", gen, now);
  else if (deployment.is_object() && deployment_condition(deployment, "Progressing", "False", "ProgressDeadlineExceeded"))
    conds = set_condition(conds, "Degraded", true, "ProgressDeadlineExceeded", "rollout is stuck", gen, now);
  else conds = set_condition(conds, "Degraded", false, "AsExpected", "", gen, now);
  st["conditions"] = conds;

  int total = 0, aready = 0, failed = 0;
  for (const auto& a : adapters) {
    ++total;
    if (condition_status(a, "Ready") == "True") ++aready;
    if (condition_status(a, "Failed") == "True") ++failed;
  }
  st["adapters"] = {{"total", total}, {"ready", aready}, {"failed", failed}};
  return st;
}

json adapter_status(const json& adapter, const std::string& invalid_reason, const std::string& invalid,
                    const std::map<std::string, PodLoad>& pods, const std::string& now) {
  long gen = adapter.at("metadata").value("generation", 0L);
  json conds = adapter.value("status", json::object()).value("conditions", json::array());
  json st = {{"observedGeneration", gen}};
  if (!invalid.empty()) {
    conds = set_condition(conds, "Failed", true, invalid_reason, invalid, gen, now);
    conds = set_condition(conds, "Ready", false, invalid_reason, invalid, gen, now);
    st["conditions"] = conds;
    st["loadedPods"] = 0;
    st["pods"] = json::array();
    return st;
  }
  json plist = json::array();
  int loaded = 0, failed = 0, done = 0;
  const bool preload = adapter.at("spec").value("preload", false);
  const std::string done_state = preload ? "Loaded" : "Registered";
  std::string first_error;
  for (const auto& [pod, r] : pods) {  // std::map: sorted by pod name, stable
    json p = {{"pod", pod}, {"state", r.state}};
    if (!r.message.empty()) p["message"] = r.message;
    plist.push_back(p);
    if (r.state == "Loaded") ++loaded;
    if (r.state == done_state) ++done;
    if (r.state == "Failed") {
      ++failed;
      if (first_error.empty()) first_error = pod + ": " + r.message;
    }
  }
  st["pods"] = plist;
  st["loadedPods"] = loaded;
  if (failed) conds = set_condition(conds, "Failed", true, "LoadFailed", first_error, gen, now);
  else conds = set_condition(conds, "Failed", false, "AsExpected", "", gen, now);
  // Ready only once every ready engine pod reports the id: registered (loaded on first
  // use) or, with preload, loaded.
  const std::string counts = std::to_string(done) + "/" + std::to_string(pods.size()) + " pods";
  if (pods.empty()) conds = set_condition(conds, "Ready", false, "NoReadyPods", "no ready engine pod yet", gen, now);
  else if (done == static_cast<int>(pods.size()))
    conds = set_condition(conds, "Ready", true, preload ? "Loaded" : "Registered",
                          (preload ? "loaded on " : "registered on ") + counts, gen, now);
  else conds = set_condition(conds, "Ready", false, preload ? "Loading" : "Registering",
                             counts + (preload ? " loaded" : " registered"), gen, now);
  st["conditions"] = conds;
  return st;
}

}  // namespace lorax::op
