// Adapter metrics of the engine server (lorax_adapters_loaded by tier, load
// duration, loads / failures / evictions, requests per adapter), fed by the
// AdapterStore's observer hooks.
#pragma once
#include "adapters/adapter_store.h"
#include "server/metrics/registry.h"

namespace lorax::server {

struct AdapterMetrics {
  explicit AdapterMetrics(metrics::Registry& r);
  void attach(AdapterStore& store);

  metrics::Family<metrics::Gauge>& loaded;      // label tier = device|host
  metrics::Histogram& load_duration;
  metrics::Counter& loads;
  metrics::Counter& load_failures;
  metrics::Family<metrics::Counter>& evictions;  // label tier = the tier it left
  metrics::Family<metrics::Counter>& requests;   // label adapter_id
};

}  // namespace lorax::server
