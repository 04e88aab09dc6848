#include "adapters/adapter_store.h"

#include "adapters/adapter_merge.h"

#include <algorithm>
#include <limits>

#include <openssl/crypto.h>
#include <set>

namespace lorax {

using SteadyClock = std::chrono::steady_clock;

namespace {
double seconds_since(SteadyClock::time_point t) {
  return std::chrono::duration<double>(SteadyClock::now() - t).count();
}
}  // namespace

// Tickets and leases may outlive the store (a request still queued at shutdown):
// they reach it through this, which the destructor disconnects.
struct AdapterTicket::Life {
  std::mutex mu;
  AdapterStore* store = nullptr;
};

void AdapterLoad::complete(std::exception_ptr e) {
  std::vector<std::function<void()>> run;
  {
    std::lock_guard lock(mu);
    done = true;
    error = std::move(e);
    run.swap(callbacks);
  }
  cv.notify_all();
  for (auto& f : run) f();
}

AdapterTicket::~AdapterTicket() {
  if (auto l = life_.lock()) {
    std::lock_guard lock(l->mu);
    if (l->store) l->store->unpin(id_, generation_);
  }
}

bool AdapterTicket::done() const {
  std::lock_guard lock(load_->mu);
  return load_->done;
}

std::exception_ptr AdapterTicket::error() const {
  std::lock_guard lock(load_->mu);
  return load_->error;
}

void AdapterTicket::when_done(std::function<void()> f) {
  {
    std::lock_guard lock(load_->mu);
    if (!load_->done) {
      load_->callbacks.push_back(std::move(f));
      return;
    }
  }
  f();
}

void AdapterTicket::wait() const {
  std::unique_lock lock(load_->mu);
  load_->cv.wait(lock, [&] { return load_->done; });
}

AdapterStore::AdapterStore(AdapterStoreConfig config, const ModelSpec& spec, Backend& backend)
    : life_(std::make_shared<AdapterTicket::Life>()), config_(std::move(config)), spec_(spec), backend_(backend) {
  config_.max_device = std::max(1, config_.max_device);
  config_.max_host = std::max(0, config_.max_host);
  if (!config_.sources.cancelled) config_.sources.cancelled = std::make_shared<std::atomic<bool>>(false);
  life_->store = this;
  for (int i = 0; i < std::max(1, config_.loader_threads); ++i) loaders_.emplace_back([this] { loader(); });
}

AdapterStore::~AdapterStore() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  config_.sources.cancelled->store(true);  // downloads in flight give up
  work_.notify_all();
  went_idle_.notify_all();
  for (auto& t : loaders_) t.join();
  for (const Job& job : queue_) {  // never started: their tickets learn why
    auto it = entries_.find(job.req.id);
    if (it != entries_.end() && it->second.generation == job.generation)
      it->second.load->complete(std::make_exception_ptr(AdapterError("adapter " + job.req.id + ": the server is shutting down")));
  }
  std::lock_guard lock(life_->mu);
  life_->store = nullptr;
}

void AdapterStore::run(Events& events) {
  for (auto& e : events) e();
  events.clear();
}

namespace {

// Who may use a loaded adapter: the same source and the same credentials as the
// request that loaded it. Without this, a client that knows only the id of an
// adapter another client fetched with its token would get it (or, naming another
// source, get the wrong adapter).
std::string access_key(const AdapterRequest& req) {
  // A registered adapter is the operator's: whoever names its id gets it, and a rotated
  // token (the registry reads it at each load) does not lock out the copy already loaded;
  // a new source, location or sha256 is a new version (request_entry replaces the old).
  if (req.registered) return "registered\n" + req.source + '\n' + req.location + '\n' + req.sha256;
  const bool url_id = req.id.rfind("http://", 0) == 0 || req.id.rfind("https://", 0) == 0;
  const std::string source = req.source.empty() && url_id ? "url" : req.source;
  return source + '\n' + req.api_token;
}

bool same_key(const std::string& a, const std::string& b) {  // holds a token: constant time
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

AdapterRequest AdapterStore::registered(const AdapterRequest& req) const {
  if (!registry_ || !req.source.empty() || req.registered) return req;
  if (auto r = registry_->lookup(req.id)) return *r;  // throws AdapterError: an unreadable token file
  return req;
}

std::shared_ptr<AdapterTicket> AdapterStore::refused(const std::string& id, std::exception_ptr error) {
  auto load = std::make_shared<AdapterLoad>();
  load->complete(error);
  return std::shared_ptr<AdapterTicket>(new AdapterTicket(life_, id, std::numeric_limits<uint64_t>::max(), load));
}

std::shared_ptr<AdapterTicket> AdapterStore::request(const AdapterRequest& client_req) {
  AdapterRequest req;
  try {
    req = registered(client_req);
  } catch (const AdapterError&) {
    return refused(client_req.id, std::current_exception());
  }
  Events events;
  std::shared_ptr<AdapterTicket> ticket = request_entry(req, events);
  run(events);
  return ticket;
}

std::shared_ptr<AdapterTicket> AdapterStore::request_entry(const AdapterRequest& req, Events& events) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(req.id);
  if (it != entries_.end() && !same_key(it->second.access, access_key(req))) {
    Entry& old = it->second;
    if (!req.registered)
      return refused(req.id, std::make_exception_ptr(AdapterForbidden(
                                 "adapter `" + req.id + "` is loaded from another source or with other credentials")));
    // Its registry entry changed (source, location or sha256): the copy held is replaced
    // as soon as no request uses it.
    if (!old.loaded() || !old.idle() || old.copy.memory)
      return refused(req.id, std::make_exception_ptr(AdapterError(
                                 "adapter `" + req.id + "` changed; the new version loads once the requests using the "
                                 "old one finish")));
    entries_.erase(it);
    it = entries_.end();
    if (observer_.residency) events.push_back([this, id = req.id] { observer_.residency(id, ""); });
    tiers_locked(events);
  }
  if (it == entries_.end()) {
    Entry e;
    e.generation = next_generation_++;
    e.source = req.source;
    e.access = access_key(req);
    e.load = std::make_shared<AdapterLoad>();
    it = entries_.emplace(req.id, std::move(e)).first;
    if (stopping_) {
      it->second.load->complete(std::make_exception_ptr(AdapterError("adapter " + req.id + ": the server is shutting down")));
    } else {
      queue_.push_back({req, it->second.generation});
      work_.notify_one();
    }
  }
  Entry& e = it->second;
  ++e.pins;
  e.last_used = SysClock::now();
  return std::shared_ptr<AdapterTicket>(new AdapterTicket(life_, req.id, e.generation, e.load));
}

void AdapterStore::loader() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu_);
      work_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    const auto start = SteadyClock::now();
    std::shared_ptr<const StagedAdapter> staged;
    std::string dir;
    std::exception_ptr error;
    try {
      if (!job.req.merge) dir = resolve_adapter_dir(job.req, config_.sources);
      for (;;) {
        try {
          staged = job.req.merge ? stage_merge(job.req)
                                 : std::make_shared<const StagedAdapter>(
                                       stage_peft_adapter(dir, job.req.id, spec_, backend_, config_.max_host_bytes));
          break;
        } catch (const HostMemoryFull&) {
          // Idle adapters make way, least recently used first; when every one is in
          // use, the load waits for one to go idle (requests finish), a minute at most.
          if (drop_idle_adapter()) continue;
          std::unique_lock lock(mu_);
          const bool freed = went_idle_.wait_for(lock, std::chrono::seconds(60), [&] {
            if (stopping_) return true;
            for (auto& [id, e] : entries_)
              if (e.loaded() && e.idle() && !e.copy.memory) return true;
            return false;
          });
          if (stopping_) throw AdapterError("adapter " + job.req.id + ": the server is shutting down");
          if (!freed)
            throw AdapterError("adapter " + job.req.id + ": the host memory for adapters (--max-host-adapter-bytes " +
                               std::to_string(config_.max_host_bytes) + ") stayed held by adapters in use");
        }
      }
    } catch (const AdapterError&) {
      error = std::current_exception();
    } catch (const std::exception& e) {  // out of host memory, an I/O failure...: still only this adapter's
      error = std::make_exception_ptr(AdapterError("adapter " + job.req.id + ": loading failed: " + e.what()));
    }
    finish_load(job, std::move(staged), dir, seconds_since(start), error);
  }
}

// A merged adapter: its sources are staged here, one after the other, only for
// the merge (they do not become entries of their own), then merged.
std::shared_ptr<const StagedAdapter> AdapterStore::stage_merge(const AdapterRequest& req) {
  const MergeSpec& spec = *req.merge;
  std::vector<std::shared_ptr<const StagedAdapter>> sources;
  for (const AdapterRequest& source : spec.adapters) {
    const AdapterRequest r = registered(source);
    const std::string dir = resolve_adapter_dir(r, config_.sources);
    sources.push_back(std::make_shared<const StagedAdapter>(
        stage_peft_adapter(dir, r.id, spec_, backend_, config_.max_host_bytes)));
  }
  return std::make_shared<const StagedAdapter>(merge_staged_adapters(sources, spec, req.id, backend_));
}

void AdapterStore::finish_load(const Job& job, std::shared_ptr<const StagedAdapter> staged, const std::string& dir,
                               double seconds, std::exception_ptr error) {
  Events events;
  std::shared_ptr<AdapterLoad> load;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(job.req.id);
    if (it == entries_.end() || it->second.generation != job.generation) return;  // unloaded meanwhile
    Entry& e = it->second;
    load = e.load;
    if (error) {
      entries_.erase(it);  // forgotten: the next request tries again
      if (observer_.load_failed) events.push_back([this, id = job.req.id] { observer_.load_failed(id); });
    } else {
      e.staged = std::move(staged);
      e.path = dir;
      e.load_seconds = seconds;
      e.last_used = SysClock::now();
      if (observer_.loaded) events.push_back([this, seconds] { observer_.loaded("host", seconds); });
      if (observer_.residency) events.push_back([this, id = job.req.id] { observer_.residency(id, "host"); });
      trim_host_locked(events);
    }
    tiers_locked(events);
  }
  run(events);  // metrics first: whoever waits for the load then sees them
  load->complete(error);
}

void AdapterStore::load(const AdapterRequest& req) {
  std::shared_ptr<AdapterTicket> ticket = request(req);
  ticket->wait();
  if (auto e = ticket->error()) std::rethrow_exception(e);
}

std::shared_ptr<const AdapterWeights> AdapterStore::acquire(const AdapterRequest& req) {
  std::shared_ptr<AdapterTicket> ticket = request(req);
  ticket->wait();
  if (auto e = ticket->error()) std::rethrow_exception(e);
  for (;;) {
    std::set<std::string> keep;  // adapters that other requests hold stay where they are
    {
      std::lock_guard lock(mu_);
      for (auto& [id, e] : entries_)
        if (id != req.id && e.pins > 0) keep.insert(id);
    }
    const Result r = make_resident(req.id, keep);
    if (r.state == State::Resident)
      if (auto w = lease(req.id)) return w;
    if (r.state == State::Failed) throw AdapterError(r.error);
    if (r.state == State::NoRoom)
      throw AdapterError("adapter " + req.id + ": every device slot (--max-loaded-adapters " +
                         std::to_string(config_.max_device) + ") holds an adapter in use");
    std::this_thread::sleep_for(std::chrono::microseconds(200));  // the device copy is in flight
  }
}

AdapterResidency::Result AdapterStore::make_resident(const std::string& id, const std::set<std::string>& keep) {
  Events events;
  Result r;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return {State::Failed, "adapter " + id + " is not loaded"};
    r = resident_locked(id, it->second, keep, events);
  }
  run(events);
  return r;
}

AdapterResidency::Result AdapterStore::resident_locked(const std::string& id, Entry& e,
                                                       const std::set<std::string>& keep, Events& events) {
  if (!e.loaded()) return {State::Pending, ""};
  if (e.device) return {State::Resident, ""};
  if (!e.copy.memory) {
    int occupied = 0;
    for (auto& [other, o] : entries_) occupied += o.occupies_device() ? 1 : 0;
    for (; occupied >= config_.max_device; --occupied)
      if (!evict_one_locked(id, keep, events)) return {State::NoRoom, ""};
    for (int attempt = 0;; ++attempt) {
      try {
        e.copy = backend_.copy_to_device(e.staged->host, e.staged->bytes);
        break;
      } catch (const std::exception& ex) {  // device memory is short: an idle adapter makes way, else this one fails
        if (attempt < 4 && evict_one_locked(id, keep, events)) continue;
        return {State::Failed, "adapter " + id + ": cannot copy its " + std::to_string(e.staged->bytes) +
                                   " bytes to the device: " + ex.what()};
      }
    }
    e.copy_started = SteadyClock::now();
    trim_host_locked(events);  // the adapters it evicted joined the host tier
  }
  if (!e.copy.ready()) return {State::Pending, ""};
  e.device = adapter_weights_view(*e.staged, e.copy.memory);
  e.device->load_identity = e.generation | (uint64_t{1} << 63);  // apart from uids, which count from 1
  e.copy = {};
  e.promote_seconds = seconds_since(e.copy_started);
  if (observer_.loaded) events.push_back([this, s = e.promote_seconds] { observer_.loaded("device", s); });
  if (observer_.residency) events.push_back([this, id] { observer_.residency(id, "device"); });
  tiers_locked(events);
  return {State::Resident, ""};
}

// Demotes the least recently used device adapter that no running request reads
// and `keep` does not name; false when there is none.
bool AdapterStore::evict_one_locked(const std::string& id, const std::set<std::string>& keep, Events& events) {
  auto victim = entries_.end();
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    const Entry& o = it->second;
    if (it->first == id || !o.device || o.leases > 0 || keep.count(it->first)) continue;
    if (victim == entries_.end() || o.last_used < victim->second.last_used) victim = it;
  }
  if (victim == entries_.end()) return false;
  victim->second.device.reset();  // its device memory goes once no forward reads it
  if (observer_.evicted) events.push_back([this] { observer_.evicted("device"); });
  if (observer_.residency) events.push_back([this, v = victim->first] { observer_.residency(v, "host"); });
  return true;
}

void AdapterStore::trim_host_locked(Events& events) {
  auto host_count = [&] {
    int n = 0;
    for (auto& [id, e] : entries_) n += e.loaded() && !e.occupies_device() ? 1 : 0;
    return n;
  };
  auto staged_bytes = [&] {
    uint64_t n = 0;
    for (auto& [id, e] : entries_) n += e.loaded() ? e.staged->bytes : 0;
    return n;
  };
  while (host_count() > config_.max_host || (config_.max_host_bytes > 0 && staged_bytes() > config_.max_host_bytes)) {
    auto victim = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      const Entry& o = it->second;
      if (!o.loaded() || o.occupies_device() || !o.idle()) continue;
      if (victim == entries_.end() || o.last_used < victim->second.last_used) victim = it;
    }
    if (victim == entries_.end()) return;  // everything left is in use: the tier overflows until it is not
    if (observer_.evicted) events.push_back([this] { observer_.evicted("host"); });
    if (observer_.residency) events.push_back([this, v = victim->first] { observer_.residency(v, ""); });
    entries_.erase(victim);
  }
}

// Host-tier adapters go first; then idle device-resident ones, whose host copy
// cannot be dropped alone (a later promotion needs it).
bool AdapterStore::drop_idle_adapter() {
  Events events;
  {
    std::lock_guard lock(mu_);
    auto victim = entries_.end();
    auto rank = [](const Entry& e) { return e.device ? 1 : 0; };
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      const Entry& o = it->second;
      if (!o.loaded() || !o.idle() || o.copy.memory) continue;
      if (victim == entries_.end() || rank(o) < rank(victim->second) ||
          (rank(o) == rank(victim->second) && o.last_used < victim->second.last_used))
        victim = it;
    }
    if (victim == entries_.end()) return false;
    const std::string tier = victim->second.device ? "device" : "host";
    if (observer_.evicted) events.push_back([this, tier] { observer_.evicted(tier); });
    if (observer_.residency) events.push_back([this, v = victim->first] { observer_.residency(v, ""); });
    entries_.erase(victim);
    tiers_locked(events);
  }
  run(events);
  return true;
}

void AdapterStore::reserve_host_memory() {
  if (config_.max_host_bytes > 0) backend_.reserve_host_memory(config_.max_host_bytes);
}

std::shared_ptr<const AdapterWeights> AdapterStore::lease(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || !it->second.device) return nullptr;
  Entry& e = it->second;
  ++e.leases;
  e.last_used = SysClock::now();
  std::weak_ptr<AdapterTicket::Life> life = life_;
  std::shared_ptr<AdapterWeights> weights = e.device;
  AdapterWeights* raw = weights.get();
  return std::shared_ptr<const AdapterWeights>(
      raw, [weights = std::move(weights), life, id, gen = e.generation](const AdapterWeights*) mutable {
        const std::shared_ptr<AdapterWeights> keep = std::move(weights);  // outlives the bookkeeping below
        if (auto l = life.lock()) {
          std::lock_guard lock(l->mu);
          if (l->store) l->store->release_lease(id, gen);
        }
      });
}

void AdapterStore::release_lease(const std::string& id, uint64_t generation) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it != entries_.end() && it->second.generation == generation && it->second.leases > 0 &&
      --it->second.leases == 0 && it->second.idle())
    went_idle_.notify_all();
}

void AdapterStore::unpin(const std::string& id, uint64_t generation) {
  Events events;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.generation != generation || it->second.pins == 0) return;
    if (--it->second.pins > 0) return;
    if (it->second.idle()) went_idle_.notify_all();
    trim_host_locked(events);  // may drop this very entry
  }
  run(events);
}

void AdapterStore::tiers_locked(Events& events) const {
  if (!observer_.tiers) return;
  int device = 0, host = 0;
  for (auto& [id, e] : entries_)
    if (e.loaded()) ++(e.device ? device : host);
  events.push_back([this, device, host] { observer_.tiers(device, host); });
}

std::vector<AdapterInfo> AdapterStore::list() const {
  std::lock_guard lock(mu_);
  std::vector<AdapterInfo> out;
  for (auto& [id, e] : entries_) {
    if (!e.loaded()) continue;
    AdapterInfo i;
    i.id = id;
    i.source = e.source.empty() ? "local" : e.source;
    i.path = e.path;
    i.tier = e.device ? "device" : "host";
    i.bytes = e.staged->bytes;
    i.rank = e.staged->max_rank;
    i.load_seconds = e.load_seconds;
    i.promote_seconds = e.promote_seconds;
    i.last_used_unix = std::chrono::duration<double>(e.last_used.time_since_epoch()).count();
    i.requests = e.pins;
    i.in_use = !e.idle();
    out.push_back(std::move(i));
  }
  return out;
}

AdapterStore::Unload AdapterStore::unload(const std::string& id) {
  Events events;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return Unload::NotFound;
    if (!it->second.loaded() || !it->second.idle() || it->second.copy.memory) return Unload::InUse;
    entries_.erase(it);
    if (observer_.residency) events.push_back([this, id] { observer_.residency(id, ""); });
    tiers_locked(events);
  }
  run(events);
  return Unload::Ok;
}

}  // namespace lorax
