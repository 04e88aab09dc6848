// lorax-operator [--config FILE] [--kubeconfig FILE]
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <thread>
#include <unistd.h>

#include "app/config.h"
#include "app/http_server.h"
#include "app/manager.h"
#include "kube/client.h"
#include "kube/leader.h"
#include "kube/log.h"

using namespace lorax;

static const char* kUsage = "usage: lorax-operator [--config FILE] [--kubeconfig FILE]\n";

static std::atomic<bool> g_stop{false};

static std::shared_ptr<kube::ClusterConfig> cluster_config(const std::string& kubeconfig) {
  if (!kubeconfig.empty()) return std::make_shared<kube::ClusterConfig>(kube::load_kubeconfig(kubeconfig));
  if (std::getenv("KUBERNETES_SERVICE_HOST")) return std::make_shared<kube::ClusterConfig>(kube::load_in_cluster());
  if (const char* env = std::getenv("KUBECONFIG"); env && *env)
    return std::make_shared<kube::ClusterConfig>(kube::load_kubeconfig(env));
  const char* home = std::getenv("HOME");
  std::string def = std::string(home ? home : "") + "/.kube/config";
  if (std::filesystem::exists(def)) return std::make_shared<kube::ClusterConfig>(kube::load_kubeconfig(def));
  throw std::runtime_error("no cluster: not in a pod, and no --kubeconfig, $KUBECONFIG or ~/.kube/config");
}

int main(int argc, char** argv) {
  std::string config_path, kubeconfig;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    }
    if ((a == "--config" || a == "--kubeconfig") && i + 1 < argc) {
      (a == "--config" ? config_path : kubeconfig) = argv[++i];
      continue;
    }
    std::cerr << "error: unknown or incomplete argument '" << a << "'\n" << kUsage;
    return 2;
  }
  op::OperatorConfig cfg;
  std::shared_ptr<kube::ClusterConfig> cluster;
  try {
    cfg = op::load_config(config_path);
    cluster = cluster_config(kubeconfig);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  if (cfg.leader.identity.empty()) {
    const char* pod = std::getenv("POD_NAME");
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    cfg.leader.identity = std::string(pod ? pod : host) + "_" + std::to_string(getpid());
  }
  if (cfg.leader.lease_namespace.empty() || cfg.leader.lease_namespace == "default")
    cfg.leader.lease_namespace = cluster->default_namespace;

  // Signals are taken by a dedicated thread so shutdown code runs outside a handler.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set] {
    int sig = 0;
    sigwait(&set, &sig);
    g_stop = true;
  }).detach();

  metrics::Registry reg;
  auto& leader_gauge = reg.gauge("lorax_operator_leader", "1 while this replica holds the leader lease").labels({});
  std::atomic<bool> synced{false};
  kube::Client client(cluster, &reg);
  std::unique_ptr<op::HttpServer> http;
  try {
    http = std::make_unique<op::HttpServer>(cfg.listen_host, cfg.listen_port, reg, [&] {
      return synced.load() || !cfg.leader_election || leader_gauge.value() == 0;  // a standby is ready
    });
  } catch (const std::exception& e) {
    std::cerr << "error: cannot listen on " << cfg.listen_host << ":" << cfg.listen_port << ": " << e.what() << "\n";
    return 1;
  }
  kube::log_info("starting", {{"server", cluster->server}, {"identity", cfg.leader.identity},
                              {"listen", cfg.listen_host + ":" + std::to_string(cfg.listen_port)}});

  kube::LeaderElector elector(client, cfg.leader);
  std::atomic<bool> lost{false};
  std::thread holder;
  if (cfg.leader_election) {
    if (!elector.acquire(g_stop)) return 0;
    leader_gauge.set(1);
    holder = std::thread([&] {
      elector.hold(g_stop);
      if (!g_stop) {
        lost = true;
        g_stop = true;
      }
    });
  }
  op::run_manager(cfg, client, reg, g_stop, synced);
  if (lost) {
    kube::log_error("exiting after losing leadership");
    std::_Exit(1);
  }
  if (holder.joinable()) holder.join();  // no renewal may race the release
  if (cfg.leader_election) elector.release();
  kube::log_info("stopped");
  std::_Exit(0);  // informer threads may sit in a watch until its timeout: do not wait for them
}
