#include "controllers/context.h"

#include <algorithm>
#include <atomic>

#include "controllers/labels.h"
#include "controllers/status.h"
#include "kube/log.h"
#include "kube/resource.h"

namespace lorax::op {

bool Discovery::has_service_monitors() {
  std::lock_guard lock(mu_);
  auto now = std::chrono::steady_clock::now();
  if (valid_ && now - checked_ < std::chrono::seconds(60)) return cached_;
  try {
    json r = client_.get("/apis/monitoring.coreos.com/v1");
    cached_ = false;
    for (const auto& res : r.value("resources", json::array()))
      if (res.value("name", "") == "servicemonitors") cached_ = true;
  } catch (const kube::ApiError& e) {
    if (e.status != 404) throw;
    cached_ = false;
  }
  valid_ = true;
  checked_ = now;
  return cached_;
}

void record_event(kube::Client& client, const json& obj, const std::string& type, const std::string& reason,
                  const std::string& message) {
  static std::atomic<unsigned> seq{0};
  try {
    const json& m = obj.at("metadata");
    std::string ns = m.value("namespace", "default");
    std::string now = now_rfc3339();
    char suffix[32];
    std::snprintf(suffix, sizeof suffix, ".%lx%x", static_cast<long>(std::time(nullptr)), seq++);
    json ev = {{"apiVersion", "v1"},
               {"kind", "Event"},
               {"metadata", {{"name", m.at("name").get<std::string>() + suffix}, {"namespace", ns}}},
               {"involvedObject",
                {{"apiVersion", obj.value("apiVersion", "")}, {"kind", obj.value("kind", "")},
                 {"name", m.at("name")}, {"namespace", ns}, {"uid", m.value("uid", "")},
                 {"resourceVersion", m.value("resourceVersion", "")}}},
               {"type", type},
               {"reason", reason},
               {"message", message},
               {"source", {{"component", kFieldManager}}},
               {"firstTimestamp", now},
               {"lastTimestamp", now},
               {"count", 1}};
    client.create(kube::resources::kEvents.collection(ns), ev);
  } catch (const std::exception& e) {
    kube::log_error("event not recorded", {{"reason", reason}, {"error", e.what()}});
  }
}

std::vector<json> ready_pods(const Caches& c, const std::string& ns, const std::string& ldep_name) {
  std::vector<json> out;
  for (auto& p : c.pods->list(ns)) {
    const json& m = p["metadata"];
    if (m.value("labels", json::object()).value("app.kubernetes.io/instance", "") != ldep_name) continue;
    if (m.contains("deletionTimestamp")) continue;
    json st = p.value("status", json::object());
    if (st.value("podIP", "").empty()) continue;
    bool ready = false;
    for (auto& cond : st.value("conditions", json::array()))
      if (cond.value("type", "") == "Ready" && cond.value("status", "") == "True") ready = true;
    if (ready) out.push_back(p);
  }
  std::sort(out.begin(), out.end(),
            [](const json& a, const json& b) { return a["metadata"]["name"] < b["metadata"]["name"]; });
  return out;
}

bool UnloadPatience::exhausted(const std::string& uid) {
  std::lock_guard lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  auto [it, fresh] = first_failure_.emplace(uid, now);
  if (fresh || now - it->second < patience_) return false;
  first_failure_.erase(it);
  return true;
}

}  // namespace lorax::op
