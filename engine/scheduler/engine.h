// Continuous batching over the paged KV cache. Every step() builds one
// flattened batch of decodes plus (chunks of) prefills within the token budgets,
// runs the model once and samples. When the cache runs out, the most recently
// admitted sequence is preempted (its blocks freed, its tokens recomputed later);
// requests are delayed, never dropped. Single-threaded: callers serialise access.
#pragma once
#include <chrono>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <set>

#include "kv/kv_cache.h"
#include "model/model.h"
#include "scheduler/request.h"
#include "tokenizer/tokenizer.h"

namespace lorax {

struct EngineConfig {
  int max_batch_prefill_tokens = 4096;  // prompt tokens computed per step
  int max_batch_total_tokens = 0;       // tokens (KV) held by running sequences; 0 = whole cache
  int max_running = 256;                // sequences in the running batch
  int max_active_adapters = 1024;       // distinct adapters (base model excluded) in the running batch
  double adapter_cycle_time_s = 2.0;    // how long an adapter may keep admitting while others wait
};

struct EngineStats {
  uint64_t steps = 0;
  uint64_t preemptions = 0;
  uint64_t forward_tokens = 0;
  int running = 0;
  int waiting = 0;
  int last_batch_size = 0;
  int max_batch_size = 0;
  int max_adapters_in_batch = 0;
  int active_adapters = 0;  // distinct adapters in the last forward batch
};

class Engine {
 public:
  Engine(Model& model, KvCache& kv, std::shared_ptr<const Tokenizer> tokenizer, EngineConfig config = {});
  ~Engine();

  // Queues a request; returns its id. Prompts must be non-empty and fit the cache.
  uint64_t submit(GenerationRequest request);
  // Cancels a queued or running request (its on_finish reports Cancelled) and frees its blocks.
  bool cancel(uint64_t id);
  // Runs one forward; false when there was nothing to do.
  bool step();
  void run_until_idle();
  bool idle() const { return waiting_.empty() && running_.empty(); }
  const EngineStats& stats() const { return stats_; }
  const KvCache& kv() const { return kv_; }
  const Model& model() const { return model_; }

  struct Sequence;

 private:
  bool reserve_slots(Sequence& seq, int tokens);
  void free_blocks(Sequence& seq);
  void preempt(Sequence& seq);
  void finish(Sequence& seq, FinishReason reason, const std::string& error = "");
  void accept_token(Sequence& seq, TokenChoice choice);
  bool is_eos(int32_t id) const;
  // Adapter rotation: which adapters may admit new requests this step.
  void rotate_adapters(std::chrono::steady_clock::time_point now);

  Model& model_;
  KvCache& kv_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  EngineConfig config_;
  EngineStats stats_;
  std::set<int32_t> eos_ids_;
  uint64_t next_id_ = 1;
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::list<std::unique_ptr<Sequence>> running_;
  // Adapters allowed to admit (activation time), and when each adapter last was
  // active: waiting adapters are activated least-recently-active first.
  std::map<std::string, std::chrono::steady_clock::time_point> admitting_;
  std::map<std::string, std::chrono::steady_clock::time_point> last_active_;
};

}  // namespace lorax
