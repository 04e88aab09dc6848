#include "app/manager.h"

#include <chrono>
#include <thread>

#include "controllers/labels.h"
#include "controllers/reconcilers.h"
#include "kube/log.h"

namespace lorax::op {

static std::string key_of(const json& obj) {
  return obj["metadata"].value("namespace", "") + "/" + obj["metadata"]["name"].get<std::string>();
}

void run_manager(const OperatorConfig& cfg, kube::Client& client, metrics::Registry& reg, const std::atomic<bool>& stop,
                 std::atomic<bool>& synced) {
  using kube::InformerSet;
  namespace r = kube::resources;
  const std::string managed = "app.kubernetes.io/managed-by=lorax-operator";
  int wt = cfg.watch_timeout_seconds;
  // Heap-allocated and never freed: informer threads are detached at shutdown (a watch may
  // block until its server-side timeout) and can still touch the caches, handlers and queues
  // until the process exits right after this function returns.
  auto& ldeps = *new InformerSet(client, r::kLoraxDeployments, cfg.namespaces, "", wt);
  auto& adapters = *new InformerSet(client, r::kAdapters, cfg.namespaces, "", wt);
  auto& deployments = *new InformerSet(client, r::kDeployments, cfg.namespaces, managed, wt);
  auto& pods = *new InformerSet(client, r::kPods, cfg.namespaces, managed, wt);
  auto& ctx = *new Context{client, {&ldeps, &adapters, &deployments, &pods}, cfg.defaults, reg, Discovery(client)};

  auto& ldep_ctl = *new Controller("loraxdeployment", reg, [&](const std::string& k) { return reconcile_deployment(ctx, k); });
  auto& adapter_ctl = *new Controller("adapter", reg, [&](const std::string& k) { return reconcile_adapter(ctx, k); });

  auto enqueue_adapters_of = [&](const std::string& ns, const std::string& ldep_name) {
    for (auto& a : adapters_of(ctx.caches, ns, ldep_name)) adapter_ctl.enqueue(key_of(a));
  };
  ldeps.add_handler([&](const std::string&, const json& o) {
    ldep_ctl.enqueue(key_of(o));
    enqueue_adapters_of(o["metadata"].value("namespace", ""), o["metadata"]["name"]);
  });
  adapters.add_handler([&](const std::string&, const json& o) {
    adapter_ctl.enqueue(key_of(o));
    std::string ref = o.value("spec", json::object()).value("deploymentRef", json::object()).value("name", "");
    if (!ref.empty()) ldep_ctl.enqueue(o["metadata"].value("namespace", "") + "/" + ref);
  });
  auto owner_label = [](const json& o) {
    return o["metadata"].value("labels", json::object()).value(kDeploymentLabel, "");
  };
  deployments.add_handler([&](const std::string&, const json& o) {
    std::string l = owner_label(o);
    if (!l.empty()) ldep_ctl.enqueue(o["metadata"].value("namespace", "") + "/" + l);
  });
  pods.add_handler([&](const std::string&, const json& o) {
    std::string l = owner_label(o);
    if (!l.empty()) enqueue_adapters_of(o["metadata"].value("namespace", ""), l);
  });

  ldeps.start();
  adapters.start();
  deployments.start();
  pods.start();
  while (!stop && !(ldeps.synced() && adapters.synced() && deployments.synced() && pods.synced()))
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  synced = true;
  kube::log_info("caches synced", {{"namespaces", cfg.namespaces}});
  ldep_ctl.start(cfg.workers);
  adapter_ctl.start(cfg.workers);

  auto last_resync = std::chrono::steady_clock::now();
  while (!stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (cfg.resync_seconds > 0 && std::chrono::steady_clock::now() - last_resync >= std::chrono::seconds(cfg.resync_seconds)) {
      last_resync = std::chrono::steady_clock::now();
      for (auto& o : ldeps.list()) ldep_ctl.enqueue(key_of(o));
      for (auto& o : adapters.list()) adapter_ctl.enqueue(key_of(o));
    }
  }
  ldep_ctl.stop();
  adapter_ctl.stop();
  ldeps.stop();
  adapters.stop();
  deployments.stop();
  pods.stop();
}

}  // namespace lorax::op
