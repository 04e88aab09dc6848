#include "server/server_metrics.h"

namespace lorax::server {
namespace {
// Latencies from 0.1 ms to ~52 s (inter-token gaps on small models are sub-millisecond); token counts 1 to 32768.
std::vector<double> seconds_buckets() { return metrics::exponential_buckets(0.0001, 2.0, 20); }
std::vector<double> token_buckets() { return metrics::exponential_buckets(1.0, 2.0, 16); }
}  // namespace

ServerMetrics::ServerMetrics(metrics::Registry& r)
    : request_count(r.counter("lorax_request_count_total", "Generation requests received").labels({})),
      request_success(r.counter("lorax_request_success_total", "Generation requests that completed").labels({})),
      request_failure(r.counter("lorax_request_failure_total", "Generation requests that failed, by error type", {"err"})),
      request_duration(r.histogram("lorax_request_duration", "End-to-end request duration in seconds", {}, seconds_buckets()).labels({})),
      request_queue_duration(r.histogram("lorax_request_queue_duration",
                                         "Seconds a request waited before its first forward", {}, seconds_buckets()).labels({})),
      request_inference_duration(r.histogram("lorax_request_inference_duration",
                                             "Seconds from first forward to finish", {}, seconds_buckets()).labels({})),
      request_mean_time_per_token_duration(r.histogram("lorax_request_mean_time_per_token_duration",
                                                       "Inference seconds per generated token", {}, seconds_buckets()).labels({})),
      request_input_length(r.histogram("lorax_request_input_length", "Prompt length in tokens", {}, token_buckets()).labels({})),
      request_generated_tokens(r.histogram("lorax_request_generated_tokens", "Generated tokens per request", {},
                                           token_buckets()).labels({})),
      time_to_first_token(r.histogram("lorax_request_time_to_first_token_duration",
                                      "Seconds from request arrival to its first generated token", {}, seconds_buckets()).labels({})),
      inter_token_latency(r.histogram("lorax_request_inter_token_latency_duration",
                                      "Seconds between consecutive generated tokens of a request", {}, seconds_buckets()).labels({})),
      batch_current_size(r.gauge("lorax_batch_current_size", "Sequences in the running batch").labels({})),
      active_adapters(r.gauge("lorax_active_adapters", "Distinct adapters in the last forward batch").labels({})),
      batch_max_size(r.gauge("lorax_batch_max_size", "Most sequences in one forward batch since start").labels({})),
      batch_max_adapters(r.gauge("lorax_batch_max_adapters", "Most distinct adapters in one forward batch since start")
                             .labels({})),
      queue_size(r.gauge("lorax_queue_size", "Requests waiting to be scheduled").labels({})),
      kv_cache_usage_ratio(r.gauge("lorax_kv_cache_usage_ratio", "Fraction of KV-cache blocks in use").labels({})),
      kv_cache_blocks_free(r.gauge("lorax_kv_cache_blocks_free", "Free KV-cache blocks").labels({})),
      kv_cache_blocks_total(r.gauge("lorax_kv_cache_blocks", "KV-cache blocks in the pool").labels({})),
      preemptions(r.counter("lorax_preemptions_total", "Sequences preempted (KV blocks freed, recomputed later)").labels({})),
      prefix_cache_queries(r.counter("lorax_prefix_cache_queries_total",
                                     "Tokens of sequences looked up in the prefix cache when scheduled").labels({})),
      prefix_cache_hits(r.counter("lorax_prefix_cache_hits_total",
                                  "Of those tokens, the ones whose K/V came from the prefix cache").labels({})),
      prefix_cache_blocks(r.gauge("lorax_prefix_cache_blocks", "KV-cache blocks holding a cached prefix").labels({})),
      cancelled(r.counter("lorax_request_cancelled_total", "Requests cancelled because the client went away").labels({})) {
  // Every error type the server answers with starts at 0, so the family is exposed (and rate() works) before the
  // first failure: prometheus-cpp leaves a family without series out of /metrics.
  for (const char* err : {"validation", "not_found", "overloaded", "generation", "cancelled"})
    request_failure.labels({err});
}

}  // namespace lorax::server
