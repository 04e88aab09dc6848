// Keeps a local cache of one resource (in one namespace or all) current: list, then
// watch from the list's resourceVersion with bookmarks; on 410 Gone it relists, on
// other failures it reconnects with exponential backoff. Handlers see every change.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "kube/client.h"
#include "kube/resource.h"

namespace lorax::kube {

class Informer {
public:
  // type: ADDED, MODIFIED or DELETED; obj: the object (for DELETED the last known state).
  using Handler = std::function<void(const std::string& type, const json& obj)>;

  Informer(Client& client, Resource resource, std::string ns, std::string label_selector = "",
           int watch_timeout_s = 300);
  ~Informer();
  void add_handler(Handler h);
  void start();
  void stop();
  bool synced() const { return synced_; }

  std::optional<json> get(const std::string& ns, const std::string& name) const;
  std::vector<json> list(const std::string& ns = "") const;
  // Events seen since start; tests and metrics use it to tell relists from watches.
  long relists() const { return relists_; }

private:
  void run();
  void relist();
  void apply_event(const std::string& type, const json& obj);
  static std::string key_of(const json& obj);

  Client& client_;
  Resource resource_;
  std::string ns_, selector_;
  int watch_timeout_s_;
  std::vector<Handler> handlers_;
  mutable std::mutex mu_;
  std::map<std::string, json> store_;
  std::string rv_;
  std::atomic<bool> stop_{false}, synced_{false};
  std::atomic<long> relists_{0};
  std::thread thread_;
};

}  // namespace lorax::kube
