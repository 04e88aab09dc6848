// The operator's config file (YAML): what to watch, engine defaults, leader election.
#pragma once

#include <string>
#include <vector>

#include "controllers/defaults.h"
#include "kube/leader.h"

namespace lorax::op {

struct OperatorConfig {
  std::vector<std::string> namespaces;  // empty: all namespaces
  Defaults defaults;
  std::string listen_host = "0.0.0.0";
  int listen_port = 8081;  // /healthz, /readyz, /metrics
  int workers = 2;
  int resync_seconds = 600;       // periodic re-reconcile, corrects drift on unwatched kinds
  int watch_timeout_seconds = 300;
  bool leader_election = true;
  kube::LeaderConfig leader;
};

// Throws std::runtime_error with a one-line reason on a bad file.
OperatorConfig load_config(const std::string& path);

}  // namespace lorax::op
