// One informer per watched namespace (or one for all namespaces), seen as a single cache.
#pragma once

#include <memory>
#include <vector>

#include "kube/informer.h"

namespace lorax::kube {

class InformerSet {
public:
  // namespaces empty: one cluster-wide informer.
  InformerSet(Client& client, const Resource& r, const std::vector<std::string>& namespaces,
              const std::string& label_selector = "", int watch_timeout_s = 300) {
    if (namespaces.empty()) informers_.push_back(std::make_unique<Informer>(client, r, "", label_selector, watch_timeout_s));
    for (const auto& ns : namespaces)
      informers_.push_back(std::make_unique<Informer>(client, r, ns, label_selector, watch_timeout_s));
  }
  void add_handler(const Informer::Handler& h) {
    for (auto& i : informers_) i->add_handler(h);
  }
  void start() {
    for (auto& i : informers_) i->start();
  }
  void stop() {
    for (auto& i : informers_) i->stop();
  }
  bool synced() const {
    for (auto& i : informers_)
      if (!i->synced()) return false;
    return true;
  }
  std::optional<json> get(const std::string& ns, const std::string& name) const {
    for (auto& i : informers_)
      if (auto o = i->get(ns, name)) return o;
    return std::nullopt;
  }
  std::vector<json> list(const std::string& ns = "") const {
    std::vector<json> out;
    for (auto& i : informers_) {
      auto part = i->list(ns);
      out.insert(out.end(), part.begin(), part.end());
    }
    return out;
  }

private:
  std::vector<std::unique_ptr<Informer>> informers_;
};

}  // namespace lorax::kube
