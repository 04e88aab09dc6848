// The adapters the engine has loaded, in three tiers: their source (a folder,
// perhaps downloaded), the host tier (staged in host memory in the device layout,
// pinned on CUDA) and the device tier (a copy the kernels read).
//
// - Loading never runs on the caller's thread: request() returns a ticket at once
//   and a pool of loader threads resolves, validates and stages the adapter (one
//   load per id however many ask; a failing load fails only the tickets that
//   waited for it).
// - The scheduler (engine thread) makes adapters resident through
//   AdapterResidency: make_resident() starts an asynchronous host-to-device copy,
//   evicting only idle device adapters outside its `keep` set, and lease() hands
//   out the resident weights. At most `max_device` adapters occupy the device.
// - A ticket pins its adapter's host copy, a lease its device copy: an adapter a
//   queued or running request holds is never dropped or unloaded. Idle host-tier
//   adapters beyond `max_host` (or the byte budget) are dropped LRU-first.
#pragma once
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "adapters/adapter_registry.h"
#include "adapters/adapter_source.h"
#include "scheduler/adapter_residency.h"

namespace lorax {

struct AdapterStoreConfig {
  AdapterSourceConfig sources;
  int max_device = 16;           // --max-loaded-adapters
  int max_host = 128;            // --max-host-adapters: loaded adapters not on the device
  uint64_t max_host_bytes = 0;   // --max-host-adapter-bytes: staged memory of all loaded adapters; 0 = unbounded
  int loader_threads = 4;
};

struct AdapterInfo {
  std::string id, source, path;
  std::string tier;  // "device" or "host"
  size_t bytes = 0;
  int rank = 0;
  double last_used_unix = 0;  // seconds since the epoch
  double load_seconds = 0;    // from its source to the host tier
  double promote_seconds = 0; // host to device, the last time
  int requests = 0;           // queued or running requests that hold it
  bool in_use = false;
};

// Hooks for metrics; called without the store's lock held.
struct AdapterStoreObserver {
  std::function<void(const std::string& tier, double seconds)> loaded;  // reached "host" (from its source) or "device"
  std::function<void(const std::string& id)> load_failed;
  std::function<void(const std::string& from_tier)> evicted;
  std::function<void(int device, int host)> tiers;
  std::function<void(const std::string& id, const std::string& tier)> residency;  // tier "" once dropped
};

// The outcome of one load, shared by every ticket that waits for it.
struct AdapterLoad {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::exception_ptr error;  // an AdapterError (see adapter_error_status)
  std::vector<std::function<void()>> callbacks;
  void complete(std::exception_ptr e);
};

class AdapterStore;

// What a request holds from the moment it names an adapter until it finishes: the
// load's outcome, and a pin on the adapter's host copy.
class AdapterTicket {
 public:
  ~AdapterTicket();
  AdapterTicket(const AdapterTicket&) = delete;
  AdapterTicket& operator=(const AdapterTicket&) = delete;
  const std::string& id() const { return id_; }
  bool done() const;
  // Once done: null when the adapter is in the host tier, else the AdapterError.
  std::exception_ptr error() const;
  // Calls `f` once when the load is done (at once if it is), on the loader's thread.
  void when_done(std::function<void()> f);
  void wait() const;

 private:
  friend class AdapterStore;
  struct Life;
  AdapterTicket(std::shared_ptr<Life> life, std::string id, uint64_t generation, std::shared_ptr<AdapterLoad> load)
      : life_(std::move(life)), id_(std::move(id)), generation_(generation), load_(std::move(load)) {}
  std::weak_ptr<Life> life_;
  std::string id_;
  uint64_t generation_;
  std::shared_ptr<AdapterLoad> load_;
};

class AdapterStore final : public AdapterResidency {
 public:
  AdapterStore(AdapterStoreConfig config, const ModelSpec& spec, Backend& backend);
  ~AdapterStore() override;
  AdapterStore(const AdapterStore&) = delete;
  AdapterStore& operator=(const AdapterStore&) = delete;

  // A ticket for the adapter; its load starts on the loader pool when it is not loaded yet.
  std::shared_ptr<AdapterTicket> request(const AdapterRequest& req);
  // Blocking, for the CLI and the admin route: loads into the host tier (throws its AdapterError).
  void load(const AdapterRequest& req);
  // Blocking: loads and makes the adapter resident, evicting only idle adapters no request holds.
  std::shared_ptr<const AdapterWeights> acquire(const AdapterRequest& req);

  // Sets the host tier's memory (--max-host-adapter-bytes) aside now: on CUDA,
  // pinning stalls the device, so a server does it before it serves.
  void reserve_host_memory();

  // AdapterResidency, for the scheduler.
  Result make_resident(const std::string& id, const std::set<std::string>& keep) override;
  std::shared_ptr<const AdapterWeights> lease(const std::string& id) override;
  int device_slots() const override { return config_.max_device; }

  std::vector<AdapterInfo> list() const;
  enum class Unload { Ok, NotFound, InUse };
  Unload unload(const std::string& id);
  void set_observer(AdapterStoreObserver o) { observer_ = std::move(o); }
  // --adapter-registry: ids a request names without adapter_source resolve here first.
  void set_registry(std::shared_ptr<AdapterRegistry> r) { registry_ = std::move(r); }
  AdapterRegistry* registry() const { return registry_.get(); }
  const AdapterStoreConfig& config() const { return config_; }

 private:
  friend class AdapterTicket;
  using SysClock = std::chrono::system_clock;
  struct Entry {
    uint64_t generation = 0;
    std::string source, path;
    std::string access;  // source + credentials of the request that loaded it (access_key)
    std::shared_ptr<AdapterLoad> load;
    std::shared_ptr<const StagedAdapter> staged;  // the host tier; null while loading
    Backend::DeviceCopy copy;                     // a device copy in flight
    std::chrono::steady_clock::time_point copy_started;
    std::shared_ptr<AdapterWeights> device;       // resident weights
    int pins = 0;    // tickets: queued or running requests
    int leases = 0;  // running requests reading the device copy
    double load_seconds = 0, promote_seconds = 0;
    SysClock::time_point last_used;
    bool loaded() const { return staged != nullptr; }
    bool occupies_device() const { return device || copy.memory; }
    bool idle() const { return pins == 0 && leases == 0; }
  };
  struct Job {
    AdapterRequest req;
    uint64_t generation;
  };
  // Observer calls gathered under the lock and made after it.
  using Events = std::vector<std::function<void()>>;
  std::shared_ptr<AdapterTicket> request_entry(const AdapterRequest& req, Events& events);  // takes the lock

  AdapterRequest registered(const AdapterRequest& req) const;
  std::shared_ptr<AdapterTicket> refused(const std::string& id, std::exception_ptr error);
  void loader();
  std::shared_ptr<const StagedAdapter> stage_merge(const AdapterRequest& req);
  void finish_load(const Job& job, std::shared_ptr<const StagedAdapter> staged, const std::string& dir,
                   double seconds, std::exception_ptr error);
  Result resident_locked(const std::string& id, Entry& e, const std::set<std::string>& keep, Events& events);
  bool evict_one_locked(const std::string& id, const std::set<std::string>& keep, Events& events);
  void trim_host_locked(Events& events);
  bool drop_idle_adapter();  // false when every loaded adapter is in use
  void unpin(const std::string& id, uint64_t generation);
  void release_lease(const std::string& id, uint64_t generation);
  void tiers_locked(Events& events) const;
  void run(Events& events);

  std::shared_ptr<AdapterTicket::Life> life_;

  AdapterStoreConfig config_;
  const ModelSpec& spec_;
  Backend& backend_;
  AdapterStoreObserver observer_;
  std::shared_ptr<AdapterRegistry> registry_;
  mutable std::mutex mu_;
  std::condition_variable work_;
  std::condition_variable went_idle_;  // a loaded adapter went idle (a load may wait for host memory)
  std::deque<Job> queue_;
  bool stopping_ = false;
  uint64_t next_generation_ = 1;
  std::map<std::string, Entry> entries_;
  std::vector<std::thread> loaders_;
};

}  // namespace lorax
