#include "server/adapter_metrics.h"

namespace lorax::server {

std::string adapter_label(const std::string& id) {
  if (id.rfind("http://", 0) != 0 && id.rfind("https://", 0) != 0) return id;
  return id.substr(0, id.find_first_of("?#"));
}

AdapterMetrics::AdapterMetrics(metrics::Registry& r)
    : loaded(r.gauge("lorax_adapters_loaded", "Adapters loaded, by tier (device: ready for batches; host: staged in host memory)",
                     {"tier"})),
      resident(r.gauge("lorax_adapter_loaded", "1 for the tier an adapter is loaded in (device or host)",
                       {"adapter_id", "tier"})),
      load_duration(r.histogram("lorax_adapter_load_duration",
                                "Seconds to load an adapter into a tier (host: fetch, validate and stage from its "
                                "source; device: copy from the host tier)",
                                {"tier"}, metrics::exponential_buckets(0.0005, 2.0, 18))),
      loads(r.counter("lorax_adapter_loads_total", "Adapter loads from their source that succeeded").labels({})),
      load_failures(r.counter("lorax_adapter_load_failures_total", "Adapter loads that failed").labels({})),
      evictions(r.counter("lorax_adapter_evictions_total",
                          "Idle adapters evicted from a tier (device: demoted to host; host: dropped)", {"tier"})),
      requests(r.counter("lorax_adapter_requests_total", "Generation requests admitted per adapter (counted once its load succeeded)", {"adapter_id"})),
      running(r.gauge("lorax_adapter_requests_running", "Requests of an adapter in the running batch", {"adapter_id"})),
      waiting(r.gauge("lorax_adapter_requests_waiting",
                      "Requests of an adapter waiting (for their turn, or for the adapter to load)", {"adapter_id"})),
      max_device(r.gauge("lorax_max_gpu_adapters", "Adapters the device tier holds at once (--max-loaded-adapters)")
                     .labels({})) {
  for (const char* tier : {"device", "host"}) {
    loaded.labels({tier}).set(0);
    evictions.labels({tier});
    load_duration.labels({tier});
  }
}

void AdapterMetrics::attach(AdapterStore& store) {
  max_device.set(store.device_slots());
  AdapterStoreObserver o;
  o.loaded = [this](const std::string& tier, double s) {
    if (tier == "host") loads.inc();
    load_duration.labels({tier}).observe(s);
  };
  o.load_failed = [this](const std::string&) { load_failures.inc(); };
  o.evicted = [this](const std::string& tier) { evictions.labels({tier}).inc(); };
  o.tiers = [this](int device, int host) {
    loaded.labels({"device"}).set(device);
    loaded.labels({"host"}).set(host);
  };
  o.residency = [this](const std::string& id, const std::string& tier) {
    const std::string label = adapter_label(id);
    std::lock_guard lock(mu_);
    auto it = tier_of_.find(label);
    if (it != tier_of_.end()) {
      resident.remove({label, it->second});
      tier_of_.erase(it);
    }
    if (tier.empty()) return;
    resident.labels({label, tier}).set(1);
    tier_of_[label] = tier;
  };
  store.set_observer(o);
}

void AdapterMetrics::publish_queues(const std::map<std::string, AdapterQueueState>& queues) {
  std::lock_guard lock(mu_);
  std::set<std::string> now;
  std::map<std::string, AdapterQueueState> by_label;
  for (auto& [id, q] : queues) {
    AdapterQueueState& sum = by_label[adapter_label(id)];
    sum.running += q.running;
    sum.waiting += q.waiting;
  }
  for (auto& [label, q] : by_label) {
    running.labels({label}).set(q.running);
    waiting.labels({label}).set(q.waiting);
    now.insert(label);
  }
  for (const std::string& label : queued_)
    if (!now.count(label)) {
      running.remove({label});
      waiting.remove({label});
    }
  queued_ = std::move(now);
}

}  // namespace lorax::server
