// The adapters the engine has loaded. Loaded on first use (the caller's thread
// does the work, never the engine loop); concurrent first requests for one id
// share one load and a failing load fails only its callers. Up to
// `max_device` adapters sit in the device tier; idle ones beyond that are
// demoted least-recently-used first to the host tier (on the CPU backend both
// tiers are host memory: demotion only moves the accounting; on other backends
// the host tier keeps the resolved files and reloads them on promotion), and idle
// ones beyond `max_host` host entries are dropped. acquire() hands out leases: an
// adapter is "in use" while a lease lives (a queued or running request holds one),
// in-use adapters are never evicted or unloaded, and the tiers are trimmed again
// when the last lease of an adapter goes.
#pragma once
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "adapters/adapter_source.h"

namespace lorax {

struct AdapterStoreConfig {
  AdapterSourceConfig sources;
  int max_device = 16;  // --max-loaded-adapters
  int max_host = 128;   // --max-host-adapters
};

struct AdapterInfo {
  std::string id, source, path;
  std::string tier;  // "device" or "host"
  size_t bytes = 0;
  int rank = 0;
  double last_used_unix = 0;  // seconds since the epoch
  double load_seconds = 0;
  bool in_use = false;
};

// Hooks for metrics; called without the store's lock held.
struct AdapterStoreObserver {
  std::function<void(double seconds)> loaded;
  std::function<void(const std::string& id)> load_failed;
  std::function<void(const std::string& from_tier)> evicted;
  std::function<void(int device, int host)> tiers;
};

class AdapterStore {
 public:
  AdapterStore(AdapterStoreConfig config, const ModelSpec& spec, Backend& backend);
  ~AdapterStore();
  AdapterStore(const AdapterStore&) = delete;
  AdapterStore& operator=(const AdapterStore&) = delete;

  // The adapter's weights, loading it if needed. Throws AdapterError (see adapter_error_status).
  std::shared_ptr<const AdapterWeights> acquire(const AdapterRequest& req);
  std::vector<AdapterInfo> list() const;
  enum class Unload { Ok, NotFound, InUse };
  Unload unload(const std::string& id);
  void set_observer(AdapterStoreObserver o) { observer_ = std::move(o); }
  const AdapterStoreConfig& config() const { return config_; }

 private:
  struct Entry {
    std::string source, path, tier = "device";
    std::shared_ptr<AdapterWeights> weights;  // null while loading, or in the host tier off-CPU
    std::shared_future<std::shared_ptr<AdapterWeights>> loading;
    bool loaded = false;
    int leases = 0;
    size_t bytes = 0;
    int rank = 0;
    double load_seconds = 0;
    std::chrono::system_clock::time_point last_used;
  };
  std::shared_ptr<AdapterWeights> load(const std::string& id, const std::string& dir);
  // Demotes/drops idle LRU entries beyond the tier limits; returns the evictions' tiers.
  std::vector<std::string> make_room_locked(const std::string& keep);
  bool idle_locked(const Entry& e) const { return e.loaded && e.leases == 0; }
  void notify_tiers();
  std::shared_ptr<const AdapterWeights> lease_locked(const std::string& id, std::shared_ptr<AdapterWeights> w);
  void released(const std::string& id);
  void report(const std::vector<std::string>& evicted);

  // Leases may outlive the store (a request still queued at shutdown): they reach
  // it through `life_`, which the destructor disconnects.
  struct Life {
    std::mutex mu;
    AdapterStore* store = nullptr;
  };
  std::shared_ptr<Life> life_ = std::make_shared<Life>();

  AdapterStoreConfig config_;
  const ModelSpec& spec_;
  Backend& backend_;
  AdapterStoreObserver observer_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
};

}  // namespace lorax
