// Continuous batching over the paged KV cache. Every step() builds one
// flattened batch of decodes plus (chunks of) prefills within the token budgets,
// runs the model once and samples. When the cache runs out, the most recently
// admitted sequence is preempted (its blocks freed, its tokens recomputed later);
// requests are delayed, never dropped. Adapters: a request runs only once its
// adapter is resident on the device (AdapterResidency), which the scheduler asks
// for ahead of the request's turn. Single-threaded: callers serialise access.
#pragma once
#include <chrono>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <set>

#include "kv/kv_cache.h"
#include "model/model.h"
#include "scheduler/adapter_residency.h"
#include "scheduler/adapter_rotation.h"
#include "scheduler/batch_builder.h"
#include "scheduler/request.h"
#include "scheduler/sequence.h"
#include "tokenizer/tokenizer.h"

namespace lorax {

struct EngineConfig {
  int max_batch_prefill_tokens = 4096;  // prompt tokens computed per step
  int max_batch_total_tokens = 0;       // tokens (KV) held by running sequences; 0 = whole cache
  int max_running = 256;                // sequences in the running batch
  int max_active_adapters = 1024;       // distinct adapters (base model excluded) in the running batch
  double adapter_cycle_time_s = 2.0;    // how long an adapter may keep admitting while others wait
  bool prefix_caching = true;           // reuse the K/V of cached prompt prefixes (--prefix-caching)
};

// Requests of one adapter in the scheduler, for a LoRA-aware router's metrics.
struct AdapterQueueState {
  int running = 0;
  int waiting = 0;
};

struct EngineStats {
  uint64_t steps = 0;
  uint64_t preemptions = 0;
  uint64_t forward_tokens = 0;
  uint64_t prefix_queries = 0;  // tokens of sequences looked up in the prefix cache
  uint64_t prefix_hits = 0;     // of those, tokens whose K/V were reused
  double mask_seconds = 0;      // host time making constrained rows' masks ready (mostly under the forward)
  int prefix_cached_blocks = 0;
  int running = 0;
  int waiting = 0;
  int last_batch_size = 0;
  int max_batch_size = 0;
  int max_adapters_in_batch = 0;
  int active_adapters = 0;  // distinct adapters in the last forward batch
  std::map<std::string, AdapterQueueState> adapters;  // by adapter id, after the last step
};

class Engine {
 public:
  // `residency` (may be null) makes adapters resident for requests that name an
  // adapter without carrying its weights.
  Engine(Model& model, KvCache& kv, std::shared_ptr<const Tokenizer> tokenizer, EngineConfig config = {},
         AdapterResidency* residency = nullptr);
  ~Engine();

  // Queues a request; returns its id. Prompts must be non-empty and fit the cache.
  uint64_t submit(GenerationRequest request);
  // Cancels a queued or running request (its on_finish reports Cancelled) and frees its blocks.
  bool cancel(uint64_t id);
  // Runs one forward; false when there was nothing to do.
  bool step();
  void run_until_idle();
  bool idle() const { return waiting_.empty() && running_.empty(); }
  // Some waiting request could run but for its adapter, which is on its way to the device.
  bool waiting_for_adapters() const { return waiting_for_adapters_; }
  const EngineStats& stats() const { return stats_; }
  const EngineConfig& config() const { return config_; }
  const KvCache& kv() const { return kv_; }
  const Model& model() const { return model_; }

 private:
  // The phases of one step, in order.
  void schedule_running(std::vector<ScheduledChunk>& plan, int& prefill_budget);
  void plan_adapters(std::chrono::steady_clock::time_point now);
  void admit_waiting(std::vector<ScheduledChunk>& plan, int& prefill_budget, std::chrono::steady_clock::time_point now);
  void run_batch(BuiltBatch& batch);
  void run_embedding_batch(BuiltBatch& batch);

  bool reserve_slots(Sequence& seq, int tokens);
  // Prefix caching: takes the cached blocks that start a sequence about to be
  // admitted, and publishes the full blocks it has computed.
  void reuse_cached_prefix(Sequence& seq);
  void publish_blocks(Sequence& seq);
  uint64_t kv_identity(const Sequence& seq) const;
  void free_blocks(Sequence& seq, bool publish = true);
  void preempt(Sequence& seq);
  void finish(Sequence& seq, FinishReason reason, const std::string& error = "");
  void fail_waiting(const std::string& adapter_id, const std::string& error);
  void accept_token(Sequence& seq, TokenChoice choice);
  std::string token_piece(int32_t id) const;  // GeneratedToken::piece
  bool is_eos(int32_t id) const;
  // The masks of a request's schema over this engine's tokenizer (shared by the
  // requests with that schema).
  std::shared_ptr<structured::MaskCache> mask_cache(const std::shared_ptr<const structured::Schema>& schema);
  // Adapter weights for a waiting sequence, if it may be admitted now; null otherwise.
  std::shared_ptr<const AdapterWeights> admissible_adapter(const Sequence& seq);
  void update_stats();

  Model& model_;
  KvCache& kv_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  EngineConfig config_;
  AdapterResidency* residency_;
  std::unique_ptr<PrefixCache> prefix_cache_;  // null when prefix caching is off
  EngineStats stats_;
  std::set<int32_t> eos_ids_;
  std::shared_ptr<const structured::TokenTable> token_table_;  // the tokenizer's tokens for constrained decoding
  std::map<std::shared_ptr<const structured::Schema>, std::shared_ptr<structured::MaskCache>> mask_caches_;
  std::unique_ptr<structured::MaskWorkers> mask_workers_;  // a batch's masks in parallel
  uint64_t next_id_ = 1;
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::list<std::unique_ptr<Sequence>> running_;
  AdapterRotation rotation_;
  bool waiting_for_adapters_ = false;
};

}  // namespace lorax
