#include "adapters/adapter_store.h"

#include <algorithm>

namespace lorax {

using SysClock = std::chrono::system_clock;

AdapterStore::AdapterStore(AdapterStoreConfig config, const ModelSpec& spec, Backend& backend)
    : config_(std::move(config)), spec_(spec), backend_(backend) {
  config_.max_device = std::max(1, config_.max_device);
  config_.max_host = std::max(0, config_.max_host);
  life_->store = this;
}

AdapterStore::~AdapterStore() {
  std::lock_guard lock(life_->mu);
  life_->store = nullptr;
}

std::shared_ptr<const AdapterWeights> AdapterStore::lease_locked(const std::string& id,
                                                                 std::shared_ptr<AdapterWeights> w) {
  if (auto it = entries_.find(id); it != entries_.end() && it->second.weights == w) ++it->second.leases;
  std::weak_ptr<Life> life = life_;
  AdapterWeights* raw = w.get();
  return std::shared_ptr<const AdapterWeights>(raw, [w = std::move(w), life, id](const AdapterWeights*) mutable {
    const std::shared_ptr<AdapterWeights> keep = w;  // the weights outlive the store's bookkeeping below
    w.reset();
    if (auto l = life.lock()) {
      std::lock_guard lock(l->mu);
      if (l->store) l->store->released(id);
    }
  });
}

void AdapterStore::released(const std::string& id) {
  std::vector<std::string> evicted;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.leases == 0) return;
    if (--it->second.leases > 0) return;
    evicted = make_room_locked("");
  }
  report(evicted);
}

void AdapterStore::report(const std::vector<std::string>& evicted) {
  for (auto& t : evicted)
    if (observer_.evicted) observer_.evicted(t);
  notify_tiers();
}

std::shared_ptr<AdapterWeights> AdapterStore::load(const std::string& id, const std::string& dir) {
  return std::make_shared<AdapterWeights>(load_peft_adapter(dir, id, spec_, backend_));
}

std::shared_ptr<const AdapterWeights> AdapterStore::acquire(const AdapterRequest& req) {
  std::unique_lock lock(mu_);
  auto it = entries_.find(req.id);
  std::string known_dir;  // set when reloading a host-tier entry whose weights were dropped
  if (it != entries_.end()) {
    Entry& e = it->second;
    if (!e.loaded) {  // someone else is loading it: wait for the same load
      auto f = e.loading;
      lock.unlock();
      std::shared_ptr<AdapterWeights> w = f.get();  // rethrows the loader's error
      lock.lock();
      return lease_locked(req.id, w);
    }
    e.last_used = SysClock::now();
    if (e.tier == "device" || e.weights) {
      std::shared_ptr<const AdapterWeights> out = lease_locked(req.id, e.weights);
      std::vector<std::string> evicted;
      if (e.tier == "host") {
        e.tier = "device";
        evicted = make_room_locked(req.id);
      }
      lock.unlock();
      report(evicted);
      return out;
    }
    known_dir = e.path;
    entries_.erase(it);
  }
  std::promise<std::shared_ptr<AdapterWeights>> promise;
  {
    Entry e;
    e.source = req.source;
    e.loading = promise.get_future().share();
    entries_.emplace(req.id, std::move(e));
  }
  lock.unlock();
  try {
    const auto start = std::chrono::steady_clock::now();
    const std::string dir = known_dir.empty() ? resolve_adapter_dir(req, config_.sources) : known_dir;
    std::shared_ptr<AdapterWeights> w = load(req.id, dir);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    lock.lock();
    Entry& e = entries_[req.id];
    e.weights = w;
    e.loaded = true;
    e.loading = {};
    e.path = dir;
    e.bytes = w->bytes;
    e.rank = w->max_rank;
    e.load_seconds = secs;
    e.tier = "device";
    e.last_used = SysClock::now();
    std::shared_ptr<const AdapterWeights> out = lease_locked(req.id, w);
    std::vector<std::string> evicted = make_room_locked(req.id);
    lock.unlock();
    promise.set_value(w);
    if (observer_.loaded) observer_.loaded(secs);
    report(evicted);
    return out;
  } catch (...) {
    if (!lock.owns_lock()) lock.lock();
    entries_.erase(req.id);
    lock.unlock();
    promise.set_exception(std::current_exception());
    if (observer_.load_failed) observer_.load_failed(req.id);
    throw;
  }
}

std::vector<std::string> AdapterStore::make_room_locked(const std::string& keep) {
  std::vector<std::string> evicted;
  auto lru = [&](const std::string& tier) {
    auto best = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
      if (it->first != keep && it->second.tier == tier && idle_locked(it->second) &&
          (best == entries_.end() || it->second.last_used < best->second.last_used))
        best = it;
    return best;
  };
  auto count = [&](const std::string& tier) {
    return static_cast<int>(std::count_if(entries_.begin(), entries_.end(),
                                          [&](auto& kv) { return kv.second.tier == tier; }));
  };
  // When every device-tier adapter is in use the tier overflows until one goes idle.
  while (count("device") > config_.max_device) {
    auto it = lru("device");
    if (it == entries_.end()) break;
    it->second.tier = "host";
    if (backend_.name() != "cpu") it->second.weights.reset();  // frees device memory; files stay on disk
    evicted.push_back("device");
  }
  while (count("host") > config_.max_host) {
    auto it = lru("host");
    if (it == entries_.end()) break;
    entries_.erase(it);
    evicted.push_back("host");
  }
  return evicted;
}

void AdapterStore::notify_tiers() {
  if (!observer_.tiers) return;
  int device = 0, host = 0;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, e] : entries_)
      if (e.loaded) ++(e.tier == "device" ? device : host);
  }
  observer_.tiers(device, host);
}

std::vector<AdapterInfo> AdapterStore::list() const {
  std::lock_guard lock(mu_);
  std::vector<AdapterInfo> out;
  for (auto& [id, e] : entries_) {
    if (!e.loaded) continue;
    AdapterInfo i;
    i.id = id;
    i.source = e.source.empty() ? "local" : e.source;
    i.path = e.path;
    i.tier = e.tier;
    i.bytes = e.bytes;
    i.rank = e.rank;
    i.load_seconds = e.load_seconds;
    i.last_used_unix = std::chrono::duration<double>(e.last_used.time_since_epoch()).count();
    i.in_use = !idle_locked(e);
    out.push_back(std::move(i));
  }
  return out;
}

AdapterStore::Unload AdapterStore::unload(const std::string& id) {
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end() || !it->second.loaded) return it == entries_.end() ? Unload::NotFound : Unload::InUse;
    if (!idle_locked(it->second)) return Unload::InUse;
    entries_.erase(it);
  }
  notify_tiers();
  return Unload::Ok;
}

}  // namespace lorax
