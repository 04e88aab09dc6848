#include "app/config.h"

#include <yaml-cpp/yaml.h>

#include <stdexcept>

namespace lorax::op {

template <class T>
static void read(const YAML::Node& n, const char* key, T& out) {
  if (n && n[key]) {
    try {
      out = n[key].as<T>();
    } catch (const std::exception&) {
      throw std::runtime_error(std::string("config: bad value for '") + key + "'");
    }
  }
}

OperatorConfig load_config(const std::string& path) {
  OperatorConfig c;
  if (path.empty()) return c;
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot load config " + path + ": " + e.what());
  }
  if (root.IsNull()) return c;
  if (!root.IsMap()) throw std::runtime_error("config " + path + ": expected a mapping");
  read(root, "namespaces", c.namespaces);
  read(root, "engineImage", c.defaults.engine_image);
  read(root, "imagePullPolicy", c.defaults.image_pull_policy);
  read(root, "listenHost", c.listen_host);
  read(root, "listenPort", c.listen_port);
  read(root, "workers", c.workers);
  read(root, "resyncSeconds", c.resync_seconds);
  read(root, "watchTimeoutSeconds", c.watch_timeout_seconds);
  YAML::Node d = root["defaults"];
  read(d, "maxActiveAdapters", c.defaults.max_active_adapters);
  read(d, "maxLoadedAdapters", c.defaults.max_loaded_adapters);
  read(d, "shmSize", c.defaults.shm_size);
  read(d, "hfCacheSize", c.defaults.hf_cache_size);
  YAML::Node le = root["leaderElection"];
  read(le, "enabled", c.leader_election);
  read(le, "leaseName", c.leader.lease_name);
  read(le, "leaseNamespace", c.leader.lease_namespace);
  read(le, "identity", c.leader.identity);
  read(le, "leaseDurationSeconds", c.leader.lease_duration_s);
  read(le, "renewDeadlineSeconds", c.leader.renew_deadline_s);
  read(le, "retryPeriodSeconds", c.leader.retry_period_s);
  if (c.workers < 1 || c.workers > 64) throw std::runtime_error("config: workers must be 1..64");
  if (c.listen_port < 0 || c.listen_port > 65535) throw std::runtime_error("config: listenPort must be 0..65535");
  if (c.leader.renew_deadline_s >= c.leader.lease_duration_s)
    throw std::runtime_error("config: leaderElection.renewDeadlineSeconds must be below leaseDurationSeconds");
  return c;
}

}  // namespace lorax::op
