// The engine server's Prometheus metrics. Names follow LoRAX's router; counters
// carry the `_total` suffix that the Prometheus text format requires of counters
// (promtool rejects `lorax_request_count` as a counter name), as every Prometheus
// client library appends it.
#pragma once
#include <string>

#include "server/metrics/registry.h"

namespace lorax::server {

struct ServerMetrics {
  explicit ServerMetrics(metrics::Registry& r);

  metrics::Counter& request_count;    // every generation request received
  metrics::Counter& request_success;  // finished with a generated response
  metrics::CounterFamily& request_failure;  // label err = error_type
  metrics::Histogram& request_duration;
  metrics::Histogram& request_queue_duration;
  metrics::Histogram& request_inference_duration;
  metrics::Histogram& request_mean_time_per_token_duration;
  metrics::Histogram& request_input_length;
  metrics::Histogram& request_generated_tokens;
  metrics::Histogram& time_to_first_token;
  metrics::Histogram& inter_token_latency;
  metrics::Gauge& batch_current_size;
  metrics::Gauge& active_adapters;     // distinct adapters in the last forward batch
  metrics::Gauge& batch_max_size;      // most sequences in one forward batch so far
  metrics::Gauge& batch_max_adapters;  // most distinct adapters in one forward batch so far
  metrics::Gauge& queue_size;
  metrics::Gauge& kv_cache_usage_ratio;
  metrics::Gauge& kv_cache_blocks_free;
  metrics::Gauge& kv_cache_blocks_total;
  metrics::Counter& preemptions;
  metrics::Counter& prefix_cache_queries;  // prompt tokens looked up in the prefix cache
  metrics::Counter& prefix_cache_hits;     // of those, tokens whose K/V were reused
  metrics::Gauge& prefix_cache_blocks;
  metrics::Counter& cancelled;

  void failure(const std::string& error_type) { request_failure.labels({error_type}).inc(); }
};

}  // namespace lorax::server
