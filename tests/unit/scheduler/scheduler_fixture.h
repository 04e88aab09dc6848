// The scheduler test fixture: an Engine over the fake backend, with a fake
// adapter residency. Shared by the scheduler and prefix-caching tests.
#pragma once
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "fake_backend.h"
#include "scheduler/engine.h"

namespace lorax::testing {

// Adapters become resident `copy_steps` make_resident() calls after the first,
// in `slots` device slots. To check the scheduler's `keep` sets it evicts any
// resident adapter outside `keep`, least recently made resident first, and
// records it when a lease still held that one (the store itself would refuse).
class FakeResidency : public AdapterResidency {
 public:
  FakeResidency(int slots, int copy_steps) : slots_(slots), copy_steps_(copy_steps) {}

  Result make_resident(const std::string& id, const std::set<std::string>& keep) override {
    ++asked_[id];
    if (failing.count(id)) return {State::Failed, "adapter " + id + " cannot be used"};
    auto it = slots_used_.find(id);
    if (it != slots_used_.end()) {
      if (it->second.countdown == 0) return {State::Resident, ""};
      return --it->second.countdown == 0 ? Result{State::Resident, ""} : Result{State::Pending, ""};
    }
    while (static_cast<int>(slots_used_.size()) >= slots_) {
      auto victim = slots_used_.end();
      for (auto v = slots_used_.begin(); v != slots_used_.end(); ++v)
        if (!keep.count(v->first) && (victim == slots_used_.end() || v->second.order < victim->second.order)) victim = v;
      if (victim == slots_used_.end()) return {State::NoRoom, ""};
      if (victim->second.weights.use_count() > 1) evicted_in_use.push_back(victim->first);
      evictions.push_back(victim->first);
      slots_used_.erase(victim);
    }
    Slot s;
    s.countdown = copy_steps_;
    s.order = next_order_++;
    s.weights = std::make_shared<AdapterWeights>();
    s.weights->id = id;
    slots_used_[id] = s;
    return copy_steps_ == 0 ? Result{State::Resident, ""} : Result{State::Pending, ""};
  }
  std::shared_ptr<const AdapterWeights> lease(const std::string& id) override {
    auto it = slots_used_.find(id);
    if (it == slots_used_.end() || it->second.countdown > 0) return nullptr;
    return it->second.weights;
  }
  int device_slots() const override { return slots_; }
  bool resident(const std::string& id) const {
    auto it = slots_used_.find(id);
    return it != slots_used_.end() && it->second.countdown == 0;
  }

  std::set<std::string> failing;
  std::vector<std::string> evictions, evicted_in_use;

 private:
  struct Slot {
    int countdown = 0;
    uint64_t order = 0;
    std::shared_ptr<AdapterWeights> weights;
  };
  int slots_, copy_steps_;
  uint64_t next_order_ = 0;
  std::map<std::string, Slot> slots_used_;
  std::map<std::string, int> asked_;
};

struct Done {
  std::vector<int32_t> tokens;
  FinishReason reason = FinishReason::Length;
  std::string error;
  int cached_tokens = 0;
  bool finished = false;
  int first_token_step = -1;
};

struct SchedulerTest : ::testing::Test {
  FakeBackend backend;
  std::unique_ptr<Model> model;
  std::unique_ptr<KvCache> kv;
  std::unique_ptr<Engine> engine;
  std::map<int, Done> done;
  int steps = 0;

  void make(int kv_blocks, EngineConfig cfg = {}, AdapterResidency* residency = nullptr, int block_size = 4) {
    engine.reset();  // it refers to the model and KV cache replaced below
    ModelSpec spec = testing::tiny_spec();
    model = std::make_unique<Model>(spec, dummy_weights(spec, backend, 0), backend);
    kv = std::make_unique<KvCache>(backend, spec.num_layers, kv_blocks, block_size, spec.num_kv_heads, spec.head_dim);
    engine = std::make_unique<Engine>(*model, *kv, nullptr, cfg, residency);
  }
  void submit(int key, std::vector<int32_t> prompt, int max_new, const std::string& adapter = "",
              bool prefill_details = false) {
    GenerationRequest r;
    r.prefill_details = prefill_details;
    r.prompt_ids = std::move(prompt);
    r.stopping.max_new_tokens = max_new;
    r.adapter_id = adapter;
    r.on_token = [this, key](const GeneratedToken&) {
      if (done[key].first_token_step < 0) done[key].first_token_step = steps;
    };
    r.on_finish = [this, key](const FinishInfo& info) {
      Done& d = done[key];
      d.finished = true;
      d.reason = info.reason;
      d.error = info.error;
      d.cached_tokens = info.cached_tokens;
      for (auto& t : info.tokens) d.tokens.push_back(t.id);
    };
    engine->submit(std::move(r));
  }
  void step() {
    engine->step();
    ++steps;
  }
  void run(int max_steps = 10000) {
    while (!engine->idle() && steps < max_steps) step();
    ASSERT_TRUE(engine->idle()) << "the scheduler did not finish in " << max_steps << " steps";
  }
  // What the fake model answers for this prompt, with no one else in the batch.
  static std::vector<int32_t> expected(std::vector<int32_t> tokens, int max_new) {
    std::vector<int32_t> out;
    for (int i = 0; i < max_new; ++i) {
      out.push_back(FakeBackend::next_token(tokens.back(), static_cast<int32_t>(tokens.size()) - 1));
      tokens.push_back(out.back());
    }
    return out;
  }
  static std::vector<int32_t> prompt(int n, int seed) {
    std::vector<int32_t> p;
    for (int i = 0; i < n; ++i) p.push_back((seed * 13 + i * 5) % 90);
    return p;
  }
  std::set<int> distinct_adapters_per_batch_max() const {
    std::set<int> sizes;
    for (const ForwardBatch& b : backend.batches) {
      std::set<int32_t> ids;
      for (auto& s : b.adapter_segments)
        if (s.adapter >= 0) ids.insert(s.adapter);
      sizes.insert(static_cast<int>(ids.size()));
    }
    return sizes;
  }
};

}  // namespace lorax::testing
