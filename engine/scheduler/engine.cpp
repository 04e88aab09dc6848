#include "scheduler/engine.h"

#include <algorithm>
#include <map>
#include <stdexcept>

#include "adapters/adapter_batch.h"

namespace lorax {

using Clock = std::chrono::steady_clock;

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Length: return "length";
    case FinishReason::EosToken: return "eos_token";
    case FinishReason::StopSequence: return "stop_sequence";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
  }
  return "?";
}

struct Engine::Sequence {
  uint64_t id = 0;
  GenerationRequest req;
  std::vector<int32_t> tokens;  // prompt + generated
  size_t prompt_len = 0;
  int computed = 0;             // tokens whose K/V are in the cache
  std::vector<int32_t> blocks;
  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<IncrementalDetokenizer> detok;
  std::vector<int32_t> generated;
  std::vector<std::optional<float>> prompt_logprobs;
  FinishInfo info;
  bool finished = false;
  Clock::time_point arrival, first_scheduled;
  bool scheduled_once = false;
};

Engine::Engine(Model& model, KvCache& kv, std::shared_ptr<const Tokenizer> tokenizer, EngineConfig config)
    : model_(model), kv_(kv), tokenizer_(std::move(tokenizer)), config_(config) {
  for (int32_t id : model_.spec().eos_token_ids) eos_ids_.insert(id);
  if (tokenizer_ && tokenizer_->config().eos_token)
    if (auto id = tokenizer_->token_to_id(*tokenizer_->config().eos_token)) eos_ids_.insert(*id);
}

Engine::~Engine() = default;

bool Engine::is_eos(int32_t id) const { return eos_ids_.count(id) > 0; }

uint64_t Engine::submit(GenerationRequest request) {
  if (request.prompt_ids.empty()) throw std::invalid_argument("the prompt must not be empty");
  const int64_t capacity = static_cast<int64_t>(kv_.allocator().num_blocks()) * kv_.block_size();
  const int64_t needed = static_cast<int64_t>(request.prompt_ids.size()) + request.stopping.max_new_tokens;
  if (needed > capacity)
    throw std::invalid_argument("prompt plus max_new_tokens (" + std::to_string(needed) +
                                " tokens) exceeds the KV cache capacity of " + std::to_string(capacity) + " tokens");
  auto seq = std::make_unique<Sequence>();
  seq->id = next_id_++;
  seq->tokens = request.prompt_ids;
  seq->prompt_len = request.prompt_ids.size();
  seq->prompt_logprobs.assign(seq->prompt_len, std::nullopt);
  uint64_t seed = request.sampling.seed.value_or(std::random_device{}() ^ (uint64_t{std::random_device{}()} << 32));
  seq->sampler = std::make_unique<Sampler>(request.sampling, seed);
  if (request.sampling.sampling()) seq->info.seed = seed;
  if (tokenizer_)
    seq->detok = std::make_unique<IncrementalDetokenizer>(tokenizer_, true, std::span<const int32_t>(request.prompt_ids));
  seq->arrival = Clock::now();
  seq->req = std::move(request);
  uint64_t id = seq->id;
  waiting_.push_back(std::move(seq));
  stats_.waiting = static_cast<int>(waiting_.size());
  return id;
}

bool Engine::cancel(uint64_t id) {
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it)
    if ((*it)->id == id) {
      finish(**it, FinishReason::Cancelled);
      waiting_.erase(it);
      return true;
    }
  for (auto it = running_.begin(); it != running_.end(); ++it)
    if ((*it)->id == id) {
      finish(**it, FinishReason::Cancelled);
      running_.erase(it);
      return true;
    }
  return false;
}

bool Engine::reserve_slots(Sequence& seq, int tokens) {
  const int bs = kv_.block_size();
  const int needed = KvCache::blocks_for_tokens(seq.computed + tokens, bs) - static_cast<int>(seq.blocks.size());
  if (needed <= 0) return true;
  BlockAllocator& alloc = kv_.allocator();
  if (!alloc.can_allocate(needed)) return false;
  if (config_.max_batch_total_tokens > 0 &&
      static_cast<int64_t>(alloc.num_blocks() - alloc.num_free() + needed) * bs > config_.max_batch_total_tokens)
    return false;
  for (int i = 0; i < needed; ++i) seq.blocks.push_back(alloc.allocate());
  return true;
}

void Engine::free_blocks(Sequence& seq) {
  for (int32_t b : seq.blocks) kv_.allocator().release(b);
  seq.blocks.clear();
}

void Engine::preempt(Sequence& seq) {
  free_blocks(seq);
  seq.computed = 0;  // recomputed from its tokens when resumed
  ++stats_.preemptions;
}

void Engine::finish(Sequence& seq, FinishReason reason, const std::string& error) {
  if (seq.finished) return;
  seq.finished = true;
  free_blocks(seq);
  FinishInfo& info = seq.info;
  info.reason = reason;
  info.error = error;
  if (seq.detok) info.generated_text += seq.detok->finish();
  if (seq.req.prefill_details) {
    info.prefill.clear();
    for (size_t i = 0; i < seq.prompt_len; ++i) {
      int32_t id = seq.tokens[i];
      std::string text = tokenizer_ ? tokenizer_->decode(std::span<const int32_t>(&id, 1), false) : "";
      info.prefill.push_back({id, text, i == 0 ? std::nullopt : seq.prompt_logprobs[i]});
    }
  }
  const auto now = Clock::now();
  auto secs = [](auto d) { return std::chrono::duration<double>(d).count(); };
  info.total_seconds = secs(now - seq.arrival);
  info.queue_seconds = seq.scheduled_once ? secs(seq.first_scheduled - seq.arrival) : info.total_seconds;
  info.inference_seconds = seq.scheduled_once ? secs(now - seq.first_scheduled) : 0.0;
  // The adapter is free for eviction/unloading before the client can see the answer.
  seq.req.adapter.reset();
  if (seq.req.on_finish) seq.req.on_finish(info);
}

void Engine::accept_token(Sequence& seq, TokenChoice choice) {
  seq.tokens.push_back(choice.id);
  seq.generated.push_back(choice.id);
  GeneratedToken tok;
  tok.id = choice.id;
  tok.logprob = choice.logprob;
  tok.special = tokenizer_ && tokenizer_->is_special(choice.id);
  const size_t before = seq.info.generated_text.size();
  if (tok.special) {
    tok.text = tokenizer_->id_to_token(choice.id);
    if (seq.detok) seq.detok->push(choice.id);  // keeps its window aligned; emits nothing for specials
  } else if (seq.detok) {
    tok.text = seq.detok->push(choice.id);
    seq.info.generated_text += tok.text;
  }
  seq.info.tokens.push_back(tok);
  if (seq.req.on_token) seq.req.on_token(tok);

  if (!seq.req.stopping.ignore_eos_token && is_eos(choice.id)) return finish(seq, FinishReason::EosToken);
  const std::string& text = seq.info.generated_text;
  for (const std::string& stop : seq.req.stopping.stop) {
    if (stop.empty()) continue;
    size_t from = before >= stop.size() ? before - stop.size() + 1 : 0;
    if (text.find(stop, from) != std::string::npos) return finish(seq, FinishReason::StopSequence);
  }
  if (static_cast<int>(seq.generated.size()) >= seq.req.stopping.max_new_tokens) finish(seq, FinishReason::Length);
}

bool Engine::step() {
  struct Planned {
    Sequence* seq;
    int count;
  };
  std::vector<Planned> plan;
  int prefill_budget = config_.max_batch_prefill_tokens;

  // 1. Running sequences, oldest first. When blocks run out, the newest running
  //    sequence gives its blocks back (and waits to be recomputed).
  for (auto it = running_.begin(); it != running_.end();) {
    Sequence& seq = **it;
    const int remaining = static_cast<int>(seq.tokens.size()) - seq.computed;
    const bool decoding = remaining == 1 && seq.computed >= static_cast<int>(seq.prompt_len);
    const int count = decoding ? 1 : std::min(remaining, std::max(prefill_budget, 0));
    if (count <= 0) {
      ++it;
      continue;
    }
    bool ok = reserve_slots(seq, count);
    while (!ok && std::prev(running_.end()) != it) {
      Sequence& victim = *running_.back();
      plan.erase(std::remove_if(plan.begin(), plan.end(), [&](const Planned& p) { return p.seq == &victim; }), plan.end());
      preempt(victim);
      waiting_.push_front(std::move(running_.back()));
      running_.pop_back();
      ok = reserve_slots(seq, count);
    }
    if (!ok) {  // this is the newest sequence and still does not fit: let it wait
      if (running_.size() == 1 && waiting_.empty() && plan.empty()) {
        finish(seq, FinishReason::Error, "request does not fit in the KV cache");
        running_.erase(it);
        break;
      }
      preempt(seq);
      waiting_.push_front(std::move(*it));
      it = running_.erase(it);
      continue;
    }
    if (!decoding) prefill_budget -= count;
    plan.push_back({&seq, count});
    ++it;
  }

  // 2. Admit waiting sequences in arrival order while budgets and blocks allow;
  //    requests of adapters that may not admit now (rotation) are skipped over.
  rotate_adapters(Clock::now());
  for (auto it = waiting_.begin();
       it != waiting_.end() && prefill_budget > 0 && static_cast<int>(running_.size()) < config_.max_running;) {
    Sequence& seq = **it;
    if (!seq.req.adapter_id.empty() && !admitting_.count(seq.req.adapter_id)) {
      ++it;
      continue;
    }
    const int count = std::min(static_cast<int>(seq.tokens.size()) - seq.computed, prefill_budget);
    if (!reserve_slots(seq, count)) break;
    prefill_budget -= count;
    plan.push_back({&seq, count});
    running_.push_back(std::move(*it));
    it = waiting_.erase(it);
  }
  stats_.waiting = static_cast<int>(waiting_.size());
  stats_.running = static_cast<int>(running_.size());
  if (plan.empty()) return false;

  // 3. Flatten into one forward batch, grouped by adapter so each adapter is one segment.
  std::stable_sort(plan.begin(), plan.end(),
                   [](const Planned& a, const Planned& b) { return a.seq->req.adapter_id < b.seq->req.adapter_id; });
  ForwardBatch batch;
  AdapterBatch adapters;
  std::map<const AdapterWeights*, int> adapter_index;
  struct Row {
    Sequence* seq;
    int position;
  };
  std::vector<Row> rows;
  const int bs = kv_.block_size();
  batch.max_blocks = 0;
  for (auto& p : plan) batch.max_blocks = std::max(batch.max_blocks, static_cast<int32_t>(p.seq->blocks.size()));
  batch.cu_seqlens.push_back(0);
  const auto now = Clock::now();
  for (auto& p : plan) {
    Sequence& seq = *p.seq;
    if (!seq.scheduled_once) {
      seq.scheduled_once = true;
      seq.first_scheduled = now;
    }
    const int start_token = batch.num_tokens();
    for (int i = 0; i < p.count; ++i) {
      const int pos = seq.computed + i;
      batch.input_ids.push_back(seq.tokens[pos]);
      batch.position_ids.push_back(pos);
      batch.slots.push_back(seq.blocks[pos / bs] * bs + pos % bs);
      const bool last = pos == static_cast<int>(seq.tokens.size()) - 1;
      const bool want_prompt_lp = seq.req.prefill_details && pos + 1 < static_cast<int>(seq.prompt_len);
      if (last || want_prompt_lp) {
        batch.lm_head_indices.push_back(batch.num_tokens() - 1);
        rows.push_back({&seq, pos});
      }
    }
    batch.cu_seqlens.push_back(batch.num_tokens());
    batch.seq_lens.push_back(seq.computed + p.count);
    batch.max_s = std::max(batch.max_s, seq.computed + p.count);
    std::vector<int32_t> table = seq.blocks;
    table.resize(batch.max_blocks, 0);
    batch.block_tables.insert(batch.block_tables.end(), table.begin(), table.end());
    int adapter = -1;
    if (seq.req.adapter) {
      auto [it, inserted] = adapter_index.emplace(seq.req.adapter.get(), static_cast<int>(adapters.adapters.size()));
      if (inserted) adapters.adapters.push_back(seq.req.adapter.get());
      adapter = it->second;
    }
    auto& segs = batch.adapter_segments;
    if (!segs.empty() && segs.back().adapter == adapter && segs.back().end == start_token)
      segs.back().end = batch.num_tokens();
    else
      segs.push_back({start_token, batch.num_tokens(), adapter});
  }
  const AdapterBatch* adapter_batch = nullptr;
  if (!adapters.adapters.empty()) {
    adapters.token_segments = batch.adapter_segments;
    adapters.derive_lm_head_segments(batch.lm_head_indices);
    adapter_batch = &adapters;
  }

  // 4. One forward, then prompt log-probs and sampling per row. When every row
  //    is a plain greedy choice, only (id, logprob) per row leaves the backend.
  bool greedy_only = true;
  for (const Row& row : rows) {
    const SamplingParams& sp = row.seq->req.sampling;
    const bool prompt_row = row.position + 1 < static_cast<int>(row.seq->prompt_len);
    if (prompt_row || sp.sampling() || sp.repetition_penalty != 1.0 || sp.frequency_penalty != 0.0 ||
        sp.presence_penalty != 0.0)
      greedy_only = false;
  }
  for (auto& p : plan) p.seq->computed += p.count;
  if (greedy_only) {
    std::vector<int32_t> ids;
    std::vector<float> logprobs;
    model_.forward_greedy(batch, kv_, adapter_batch, ids, logprobs);
    for (size_t r = 0; r < rows.size(); ++r)
      if (!rows[r].seq->finished) accept_token(*rows[r].seq, TokenChoice{ids[r], logprobs[r]});
  } else {
    // What each row needs: a prompt token's log-prob, a chosen token, or nothing
    // (a row whose result is not used asks for a log-prob nobody reads).
    std::vector<RowChoice> choices(rows.size());
    std::vector<bool> chooses(rows.size(), false);
    for (size_t r = 0; r < rows.size(); ++r) {
      Sequence& seq = *rows[r].seq;
      const int pos = rows[r].position;
      choices[r].prompt_target = 0;
      if (seq.finished) continue;
      if (pos + 1 < static_cast<int>(seq.prompt_len)) {
        choices[r].prompt_target = seq.tokens[pos + 1];
      } else if (pos == static_cast<int>(seq.tokens.size()) - 1) {
        choices[r] = seq.sampler->next(seq.tokens, seq.generated);
        chooses[r] = true;
      }
    }
    const std::vector<TokenChoice> chosen = model_.forward_choose(batch, kv_, adapter_batch, choices, choose_token);
    for (size_t r = 0; r < rows.size(); ++r) {
      Sequence& seq = *rows[r].seq;
      if (seq.finished) continue;
      if (chooses[r])
        accept_token(seq, chosen[r]);
      else if (choices[r].prompt_target >= 0 && rows[r].position + 1 < static_cast<int>(seq.prompt_len))
        seq.prompt_logprobs[rows[r].position + 1] = chosen[r].logprob;
    }
  }
  stats_.steps++;
  stats_.forward_tokens += batch.num_tokens();
  stats_.last_batch_size = batch.num_seqs();
  stats_.max_batch_size = std::max(stats_.max_batch_size, batch.num_seqs());
  stats_.active_adapters = static_cast<int>(adapters.adapters.size());
  stats_.max_adapters_in_batch = std::max(stats_.max_adapters_in_batch, stats_.active_adapters);
  running_.remove_if([](const std::unique_ptr<Sequence>& s) { return s->finished; });
  stats_.running = static_cast<int>(running_.size());
  return true;
}

// At most max_active_adapters distinct adapters are in the running batch. Adapters
// of waiting requests are activated least-recently-active first while the cap
// allows; when some still wait, adapters that have admitted for a whole cycle stop
// admitting (their running requests finish normally), so the batch drains toward
// the waiting ones and no adapter starves. The base model is not counted.
void Engine::rotate_adapters(Clock::time_point now) {
  std::set<std::string> in_batch, waiting_ids;
  for (auto& s : running_)
    if (!s->req.adapter_id.empty()) in_batch.insert(s->req.adapter_id);
  std::vector<std::string> pending;
  for (auto& s : waiting_) {
    const std::string& id = s->req.adapter_id;
    if (!id.empty() && waiting_ids.insert(id).second && !admitting_.count(id)) pending.push_back(id);
  }
  for (auto it = admitting_.begin(); it != admitting_.end();) {
    if (in_batch.count(it->first) || waiting_ids.count(it->first)) {
      ++it;
    } else {
      last_active_[it->first] = now;
      it = admitting_.erase(it);
    }
  }
  if (last_active_.size() > 4096)  // forget adapters that have nothing queued (their order no longer matters)
    for (auto it = last_active_.begin(); it != last_active_.end();)
      it = waiting_ids.count(it->first) ? std::next(it) : last_active_.erase(it);
  if (pending.empty()) return;
  auto last_active = [&](const std::string& id) {
    auto it = last_active_.find(id);
    return it == last_active_.end() ? Clock::time_point::min() : it->second;
  };
  std::stable_sort(pending.begin(), pending.end(),
                   [&](const std::string& a, const std::string& b) { return last_active(a) < last_active(b); });
  const size_t cap = static_cast<size_t>(std::max(1, config_.max_active_adapters));
  auto activate = [&] {  // in order; the first one that does not fit stops the rest
    for (const std::string& id : pending) {
      if (admitting_.count(id)) continue;
      std::set<std::string> distinct = in_batch;
      for (auto& [a, t] : admitting_) distinct.insert(a);
      if (!distinct.count(id) && distinct.size() >= cap) return false;
      admitting_[id] = now;
    }
    return true;
  };
  if (activate()) return;
  const auto cycle = std::chrono::duration<double>(config_.adapter_cycle_time_s);
  for (auto it = admitting_.begin(); it != admitting_.end();) {
    if (now - it->second >= cycle) {
      last_active_[it->first] = now;
      it = admitting_.erase(it);
    } else {
      ++it;
    }
  }
  activate();
}

void Engine::run_until_idle() {
  while (!idle())
    if (!step() && !idle()) throw std::runtime_error("scheduler made no progress");
}

}  // namespace lorax
