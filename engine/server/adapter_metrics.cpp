#include "server/adapter_metrics.h"

namespace lorax::server {

AdapterMetrics::AdapterMetrics(metrics::Registry& r)
    : loaded(r.gauge("lorax_adapters_loaded", "Adapters loaded, by tier (device: ready for batches; host: demoted)",
                     {"tier"})),
      load_duration(r.histogram("lorax_adapter_load_duration", "Seconds to fetch, validate and load an adapter", {},
                                metrics::exponential_buckets(0.001, 2.0, 16))
                        .labels({})),
      loads(r.counter("lorax_adapter_loads_total", "Adapter loads that succeeded").labels({})),
      load_failures(r.counter("lorax_adapter_load_failures_total", "Adapter loads that failed").labels({})),
      evictions(r.counter("lorax_adapter_evictions_total",
                          "Idle adapters evicted from a tier (device: demoted to host; host: dropped)", {"tier"})),
      requests(r.counter("lorax_adapter_requests_total", "Generation requests per adapter", {"adapter_id"})) {
  loaded.labels({"device"}).set(0);
  loaded.labels({"host"}).set(0);
  evictions.labels({"device"});
  evictions.labels({"host"});
}

void AdapterMetrics::attach(AdapterStore& store) {
  AdapterStoreObserver o;
  o.loaded = [this](double s) {
    loads.inc();
    load_duration.observe(s);
  };
  o.load_failed = [this](const std::string&) { load_failures.inc(); };
  o.evicted = [this](const std::string& tier) { evictions.labels({tier}).inc(); };
  o.tiers = [this](int device, int host) {
    loaded.labels({"device"}).set(device);
    loaded.labels({"host"}).set(host);
  };
  store.set_observer(o);
}

}  // namespace lorax::server
