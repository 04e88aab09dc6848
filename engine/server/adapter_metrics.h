// Adapter metrics of the engine server, for dashboards and for a LoRA-aware
// router (llm-d, KServe): adapters per tier, which adapter is in which tier,
// requests running and waiting per adapter, the device slots, load seconds per
// tier (host: from the source; device: host-to-device copy), loads, failures,
// evictions and requests per adapter. Fed by the AdapterStore's observer hooks
// and the engine loop.
#pragma once
#include <map>
#include <set>

#include "adapters/adapter_store.h"
#include "scheduler/engine.h"
#include "server/metrics/registry.h"

namespace lorax::server {

// The label an adapter id gets: a URL id loses its query and fragment, which may
// carry credentials (signed URLs) that /metrics must not show.
std::string adapter_label(const std::string& id);

struct AdapterMetrics {
  explicit AdapterMetrics(metrics::Registry& r);
  void attach(AdapterStore& store);
  // Requests running and waiting per adapter (series of adapters with none are dropped).
  void publish_queues(const std::map<std::string, AdapterQueueState>& queues);

  metrics::GaugeFamily& loaded;      // label tier = device|host
  metrics::GaugeFamily& resident;    // labels adapter_id, tier: 1 while it is there
  metrics::HistogramFamily& load_duration;  // label tier = host|device
  metrics::Counter& loads;
  metrics::Counter& load_failures;
  metrics::CounterFamily& evictions;  // label tier = the tier it left
  metrics::CounterFamily& requests;   // label adapter_id
  metrics::GaugeFamily& running;      // label adapter_id
  metrics::GaugeFamily& waiting;      // label adapter_id
  metrics::Gauge& max_device;

 private:
  std::mutex mu_;
  std::map<std::string, std::string> tier_of_;  // label -> tier of its `resident` series
  std::set<std::string> queued_;                // labels with running/waiting series
};

}  // namespace lorax::server
