#include "kube/leader.h"

#include <ctime>
#include <thread>

#include "kube/log.h"
#include "kube/resource.h"

namespace lorax::kube {

LeaderElector::LeaderElector(Client& client, LeaderConfig cfg) : client_(client), cfg_(std::move(cfg)) {}

bool LeaderElector::try_acquire_or_renew() {
  const Resource& r = resources::kLeases;
  std::string path = r.item(cfg_.lease_namespace, cfg_.lease_name);
  std::string now = micro_time_now();
  json lease;
  try {
    lease = client_.get(path);
  } catch (const ApiError& e) {
    if (e.status != 404) throw;
    json fresh = {{"apiVersion", "coordination.k8s.io/v1"},
                  {"kind", "Lease"},
                  {"metadata", {{"name", cfg_.lease_name}, {"namespace", cfg_.lease_namespace}}},
                  {"spec",
                   {{"holderIdentity", cfg_.identity}, {"leaseDurationSeconds", cfg_.lease_duration_s},
                    {"acquireTime", now}, {"renewTime", now}, {"leaseTransitions", 0}}}};
    try {
      client_.create(r.collection(cfg_.lease_namespace), fresh);
      return true;
    } catch (const ApiError& ce) {
      if (ce.status == 409) return false;  // another candidate created it first
      throw;
    }
  }
  json spec = lease.value("spec", json::object());
  std::string holder = spec.value("holderIdentity", "");
  std::string rv = lease["metadata"].value("resourceVersion", "");
  auto t = std::chrono::steady_clock::now();
  if (rv != observed_rv_) {  // someone renewed: restart our own expiry clock
    observed_rv_ = rv;
    observed_at_ = t;
  }
  int duration = spec.value("leaseDurationSeconds", cfg_.lease_duration_s);
  bool expired = t - observed_at_ >= std::chrono::seconds(duration);
  if (!holder.empty() && holder != cfg_.identity && !expired) return false;
  if (holder != cfg_.identity) {
    spec["leaseTransitions"] = spec.value("leaseTransitions", 0) + 1;
    spec["acquireTime"] = now;
  }
  spec["holderIdentity"] = cfg_.identity;
  spec["leaseDurationSeconds"] = cfg_.lease_duration_s;
  spec["renewTime"] = now;
  lease["spec"] = spec;
  try {
    json updated = client_.update(path, lease);  // carries resourceVersion: 409 if someone else wrote
    observed_rv_ = updated["metadata"].value("resourceVersion", "");
    observed_at_ = t;
    return true;
  } catch (const ApiError& e) {
    if (e.status == 409) return false;
    throw;
  }
}

bool LeaderElector::acquire(const std::atomic<bool>& stop) {
  log_info("waiting for leadership", {{"lease", cfg_.lease_namespace + "/" + cfg_.lease_name}, {"identity", cfg_.identity}});
  while (!stop) {
    try {
      if (try_acquire_or_renew()) {
        leading_ = true;
        log_info("became leader", {{"identity", cfg_.identity}});
        return true;
      }
    } catch (const std::exception& e) {
      log_error("leader election", {{"error", e.what()}});
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(cfg_.retry_period_s * 1000)));
  }
  return false;
}

void LeaderElector::hold(const std::atomic<bool>& stop) {
  auto last_ok = std::chrono::steady_clock::now();
  while (!stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(cfg_.retry_period_s * 1000)));
    if (stop) break;
    bool ok = false;
    try {
      ok = try_acquire_or_renew();
    } catch (const std::exception& e) {
      log_error("lease renewal failed", {{"error", e.what()}});
    }
    auto now = std::chrono::steady_clock::now();
    if (ok) last_ok = now;
    else if (now - last_ok >= std::chrono::seconds(cfg_.renew_deadline_s)) {
      leading_ = false;
      log_error("lost leadership", {{"identity", cfg_.identity}});
      return;
    }
  }
}

void LeaderElector::release() {
  if (!leading_) return;
  std::string path = resources::kLeases.item(cfg_.lease_namespace, cfg_.lease_name);
  for (int attempt = 0; attempt < 3; ++attempt) {
    try {
      json lease = client_.get(path);
      if (lease["spec"].value("holderIdentity", "") == cfg_.identity) {
        lease["spec"]["holderIdentity"] = "";
        client_.update(path, lease);
      }
      break;
    } catch (const ApiError& e) {
      if (e.status == 409) continue;  // raced with our own last renewal: read again
      log_error("lease release failed", {{"error", e.what()}});
      break;
    } catch (const std::exception& e) {
      log_error("lease release failed", {{"error", e.what()}});
      break;
    }
  }
  leading_ = false;
}

}  // namespace lorax::kube
