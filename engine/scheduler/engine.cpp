#include "scheduler/engine.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <thread>

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

Engine::Engine(Model& model, KvCache& kv, std::shared_ptr<const Tokenizer> tokenizer, EngineConfig config,
               AdapterResidency* residency)
    : model_(model), kv_(kv), tokenizer_(std::move(tokenizer)), config_(config), residency_(residency) {
  if (config_.prefix_caching) prefix_cache_ = std::make_unique<PrefixCache>(kv_.allocator(), kv_.block_size());
  for (int32_t id : model_.spec().eos_token_ids) eos_ids_.insert(id);
  if (tokenizer_ && tokenizer_->config().eos_token)
    if (auto id = tokenizer_->token_to_id(*tokenizer_->config().eos_token)) eos_ids_.insert(*id);
  // Built here (0.1-0.4 s for a 128k-256k vocabulary), not at the first constrained
  // request, where it would stall every running request.
  if (tokenizer_) token_table_ = structured::TokenTable::build(*tokenizer_, eos_ids_);
  // Up to 8 helpers, leaving two cores to the engine and HTTP threads.
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  mask_workers_ = std::make_unique<structured::MaskWorkers>(tokenizer_ ? std::clamp(cores - 2, 0, 8) : 0);
}

Engine::~Engine() = default;

bool Engine::is_eos(int32_t id) const { return eos_ids_.count(id) > 0; }

std::shared_ptr<structured::MaskCache> Engine::mask_cache(const std::shared_ptr<const structured::Schema>& schema) {
  auto it = mask_caches_.find(schema);
  if (it != mask_caches_.end()) return it->second;
  // Schemas only this map still holds (no request or server cache uses them) go first.
  constexpr size_t kMaxSchemas = 64;
  for (auto i = mask_caches_.begin(); mask_caches_.size() >= kMaxSchemas && i != mask_caches_.end();)
    i = i->first.use_count() == 1 ? mask_caches_.erase(i) : std::next(i);
  auto cache = std::make_shared<structured::MaskCache>(schema, token_table_);
  if (mask_caches_.size() < kMaxSchemas) mask_caches_[schema] = cache;
  return cache;
}

uint64_t Engine::submit(GenerationRequest request) {
  if (request.prompt_ids.empty()) throw std::invalid_argument("the prompt must not be empty");
  const int64_t capacity = static_cast<int64_t>(kv_.allocator().num_blocks()) * kv_.block_size();
  const int64_t needed = static_cast<int64_t>(request.prompt_ids.size()) + request.stopping.max_new_tokens;
  if (needed > capacity)
    throw std::invalid_argument("prompt plus max_new_tokens (" + std::to_string(needed) +
                                " tokens) exceeds the KV cache capacity of " + std::to_string(capacity) + " tokens");
  if (model_.embedding_head() && !request.embed)
    throw std::invalid_argument("this is an embedding model: it computes embeddings and cannot generate text");
  if (request.embed && !model_.embedding_head())
    throw std::invalid_argument("this model is not an embedding model (it has no modules.json)");
  if (request.top_n_tokens < 0 || request.top_n_tokens > kMaxTopTokens)
    throw std::invalid_argument("top_n_tokens must be between 0 and " + std::to_string(kMaxTopTokens));
  if (!request.adapter_id.empty() && !request.adapter && !residency_)
    throw std::invalid_argument("adapter `" + request.adapter_id + "`: this engine has no adapter store");
  auto seq = std::make_unique<Sequence>();
  seq->id = next_id_++;
  seq->tokens = request.prompt_ids;
  seq->prompt_len = request.prompt_ids.size();
  seq->prompt_logprobs.assign(seq->prompt_len, std::nullopt);
  uint64_t seed = request.sampling.seed.value_or(std::random_device{}() ^ (uint64_t{std::random_device{}()} << 32));
  seq->sampler = std::make_unique<Sampler>(request.sampling, seed);
  if (request.sampling.sampling()) seq->info.seed = seed;
  if (request.schema) {
    if (!tokenizer_) throw std::invalid_argument("constrained decoding needs the model's tokenizer");
    seq->constraint = std::make_unique<structured::Constraint>(mask_cache(request.schema),
                                                               !request.stopping.ignore_eos_token);
  }
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
      update_stats();  // an engine left idle takes no step that would refresh them
      return true;
    }
  for (auto it = running_.begin(); it != running_.end(); ++it)
    if ((*it)->id == id) {
      finish(**it, FinishReason::Cancelled);
      running_.erase(it);
      update_stats();
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

uint64_t Engine::kv_identity(const Sequence& seq) const { return seq.adapter ? seq.adapter->kv_identity() : 0; }

void Engine::reuse_cached_prefix(Sequence& seq) {
  // Prompt log-probs need every prompt position's logits: see prefix_cache.h.
  if (!prefix_cache_ || !seq.blocks.empty() || seq.req.prefill_details || seq.req.embed) return;
  // The newest token is always computed (its logits are needed), so a chain
  // never covers it: only blocks wholly before it are reused, and nothing is
  // ever written into a shared block.
  const int usable = (static_cast<int>(seq.tokens.size()) - 1) / kv_.block_size();
  PrefixCache::Match m = prefix_cache_->match(kv_identity(seq), seq.tokens, usable);
  const int reused = static_cast<int>(m.blocks.size()) * kv_.block_size();
  seq.blocks = std::move(m.blocks);
  seq.prefix = m.chain;
  seq.computed = reused;
}

void Engine::publish_blocks(Sequence& seq) {
  if (!prefix_cache_) return;
  const int full = std::min<int>(seq.computed, static_cast<int>(seq.tokens.size())) / kv_.block_size();
  if (full <= seq.prefix.blocks) return;
  prefix_cache_->publish(kv_identity(seq), seq.tokens, seq.blocks, full, seq.prefix);
}

// Released last block first, so that the LRU reclaims a chain from its end and
// the blocks a shorter shared prefix needs stay longest.
void Engine::free_blocks(Sequence& seq, bool publish) {
  if (publish) publish_blocks(seq);
  for (auto it = seq.blocks.rbegin(); it != seq.blocks.rend(); ++it) kv_.allocator().release(*it);
  seq.blocks.clear();
  seq.prefix = {};
}

void Engine::preempt(Sequence& seq) {
  free_blocks(seq);
  seq.computed = 0;      // recomputed from its tokens when resumed
  seq.pooled.clear();
  seq.adapter.reset();   // a waiting request pins no device slot
  ++stats_.preemptions;
}

void Engine::finish(Sequence& seq, FinishReason reason, const std::string& error) {
  if (seq.finished) return;
  seq.finished = true;
  free_blocks(seq, reason != FinishReason::Error);  // a failed request's K/V are not offered to others
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
  seq.adapter.reset();
  seq.req.adapter.reset();
  seq.req.adapter_hold.reset();
  if (seq.req.on_finish) seq.req.on_finish(info);
}

void Engine::fail_waiting(const std::string& adapter_id, const std::string& error) {
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if ((*it)->req.adapter_id == adapter_id && !(*it)->req.adapter) {
      finish(**it, FinishReason::Error, error);
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
}

std::string Engine::token_piece(int32_t id) const {
  if (std::optional<std::string> bytes = tokenizer_->token_bytes(id)) return *bytes;
  return tokenizer_->id_to_token(id);
}

void Engine::accept_token(Sequence& seq, TokenChoice choice) {
  // A log-probability is never NaN or +inf unless the logits row was (overflowed
  // activations, a broken checkpoint): fail the request rather than emit noise.
  if (std::isnan(choice.logprob) || choice.logprob == std::numeric_limits<float>::infinity())
    return finish(seq, FinishReason::Error, "the model produced non-finite logits (NaN or infinity) for this request");
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
  if (tokenizer_ && (seq.req.token_pieces || seq.req.top_n_tokens > 0)) {
    tok.piece = token_piece(choice.id);
    for (const TokenAlternative& alt : choice.top)
      tok.top_tokens.push_back({alt.id, token_piece(alt.id), alt.logprob, tokenizer_->is_special(alt.id)});
  }
  seq.info.tokens.push_back(tok);
  if (seq.req.on_token) seq.req.on_token(tok);

  if (!seq.req.stopping.ignore_eos_token && is_eos(choice.id)) return finish(seq, FinishReason::EosToken);
  if (seq.constraint && !seq.constraint->accept(choice.id))
    return finish(seq, FinishReason::Error, "the chosen token is outside the response format's grammar");
  const std::string& text = seq.info.generated_text;
  for (const std::string& stop : seq.req.stopping.stop) {
    if (stop.empty()) continue;
    size_t from = before >= stop.size() ? before - stop.size() + 1 : 0;
    if (text.find(stop, from) != std::string::npos) return finish(seq, FinishReason::StopSequence);
  }
  // A complete JSON text: nothing but the end may follow, so it ends here.
  if (seq.constraint && seq.constraint->complete()) return finish(seq, FinishReason::EosToken);
  if (static_cast<int>(seq.generated.size()) >= seq.req.stopping.max_new_tokens) finish(seq, FinishReason::Length);
}

bool Engine::step() {
  std::vector<ScheduledChunk> plan;
  int prefill_budget = config_.max_batch_prefill_tokens;
  schedule_running(plan, prefill_budget);
  const auto now = Clock::now();
  plan_adapters(now);
  admit_waiting(plan, prefill_budget, now);
  update_stats();
  if (plan.empty()) return false;
  for (const ScheduledChunk& c : plan)
    if (!c.seq->scheduled_once) {
      c.seq->scheduled_once = true;
      c.seq->first_scheduled = now;
    }
  BuiltBatch batch = build_batch(plan, kv_.block_size());
  for (const ScheduledChunk& c : plan) c.seq->computed += c.count;
  run_batch(batch);
  for (const ScheduledChunk& c : plan)
    if (!c.seq->finished) publish_blocks(*c.seq);
  stats_.steps++;
  stats_.forward_tokens += batch.forward.num_tokens();
  stats_.last_batch_size = batch.forward.num_seqs();
  stats_.max_batch_size = std::max(stats_.max_batch_size, batch.forward.num_seqs());
  stats_.active_adapters = static_cast<int>(batch.adapters.adapters.size());
  stats_.max_adapters_in_batch = std::max(stats_.max_adapters_in_batch, stats_.active_adapters);
  running_.remove_if([](const std::unique_ptr<Sequence>& s) { return s->finished; });
  update_stats();
  return true;
}

// Running sequences, oldest first, each gets its next token or prefill chunk.
// When blocks run out, the newest running sequence gives its blocks back (and
// waits to be recomputed).
void Engine::schedule_running(std::vector<ScheduledChunk>& plan, int& prefill_budget) {
  for (auto it = running_.begin(); it != running_.end();) {
    Sequence& seq = **it;
    const bool decoding = seq.decoding();
    const int count = decoding ? 1 : std::min(seq.remaining(), std::max(prefill_budget, 0));
    if (count <= 0) {
      ++it;
      continue;
    }
    bool ok = reserve_slots(seq, count);
    while (!ok && std::prev(running_.end()) != it) {
      Sequence& victim = *running_.back();
      plan.erase(std::remove_if(plan.begin(), plan.end(), [&](const ScheduledChunk& p) { return p.seq == &victim; }),
                 plan.end());
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
}

// Rotation decides which adapters may admit; the residency is asked, without
// waiting, for those adapters and then for the adapters of the queue in order
// (prefetch), never evicting one that a running, admitting or earlier-queued
// request needs.
void Engine::plan_adapters(Clock::time_point now) {
  std::set<std::string> in_batch;
  for (auto& s : running_)
    if (s->uses_adapter()) in_batch.insert(s->req.adapter_id);
  std::vector<std::string> queued;      // every waiting request's adapter, in queue order
  std::vector<std::string> from_store;  // distinct ones the residency must provide, in queue order
  std::set<std::string> seen;
  for (auto& s : waiting_) {
    if (!s->uses_adapter()) continue;
    queued.push_back(s->req.adapter_id);
    if (!s->req.adapter && seen.insert(s->req.adapter_id).second) from_store.push_back(s->req.adapter_id);
  }
  size_t cap = static_cast<size_t>(std::max(1, config_.max_active_adapters));
  if (residency_) cap = std::min(cap, static_cast<size_t>(std::max(1, residency_->device_slots())));
  rotation_.update(now, in_batch, queued, cap, config_.adapter_cycle_time_s);
  if (!residency_) return;
  std::set<std::string> keep = in_batch;
  for (const std::string& id : rotation_.admitting_in_order()) keep.insert(id);
  std::vector<std::pair<std::string, std::string>> failed;
  bool room = true;
  for (int pass = 0; pass < 2; ++pass)  // the admitting adapters first, then the rest of the queue
    for (const std::string& id : from_store) {
      if (in_batch.count(id) || rotation_.admitting(id) != (pass == 0)) continue;
      if (pass == 1) {
        if (!room) break;
        keep.insert(id);
      }
      const AdapterResidency::Result r = residency_->make_resident(id, keep);
      if (r.state == AdapterResidency::State::Failed) failed.push_back({id, r.error});
      if (pass == 1 && r.state == AdapterResidency::State::NoRoom) room = false;
    }
  for (auto& [id, error] : failed) fail_waiting(id, error);
}

std::shared_ptr<const AdapterWeights> Engine::admissible_adapter(const Sequence& seq) {
  if (!rotation_.admitting(seq.req.adapter_id)) return nullptr;
  if (seq.req.adapter) return seq.req.adapter;
  std::shared_ptr<const AdapterWeights> lease = residency_->lease(seq.req.adapter_id);
  if (!lease) waiting_for_adapters_ = true;
  return lease;
}

// Waiting sequences in arrival order while budgets and blocks allow; requests of
// adapters that may not admit now (rotation) or are not resident yet are skipped over.
void Engine::admit_waiting(std::vector<ScheduledChunk>& plan, int& prefill_budget, Clock::time_point now) {
  waiting_for_adapters_ = false;
  for (auto it = waiting_.begin();
       it != waiting_.end() && prefill_budget > 0 && static_cast<int>(running_.size()) < config_.max_running;) {
    Sequence& seq = **it;
    std::shared_ptr<const AdapterWeights> adapter;
    if (seq.uses_adapter() && !(adapter = admissible_adapter(seq))) {
      ++it;
      continue;
    }
    seq.adapter = adapter;  // its K/V identity, for the prefix cache
    reuse_cached_prefix(seq);
    const int count = std::min(seq.remaining(), prefill_budget);
    if (!reserve_slots(seq, count)) {
      free_blocks(seq, false);  // the reused blocks go back to the cache; it is retried later
      seq.computed = 0;
      seq.adapter.reset();
      break;
    }
    if (prefix_cache_) {
      stats_.prefix_queries += seq.tokens.size();
      stats_.prefix_hits += seq.computed;
      if (!seq.scheduled_once) seq.info.cached_tokens = std::min<int>(seq.computed, static_cast<int>(seq.prompt_len));
    }
    if (seq.uses_adapter()) rotation_.admitted(seq.req.adapter_id, now);
    prefill_budget -= count;
    plan.push_back({&seq, count});
    running_.push_back(std::move(*it));
    it = waiting_.erase(it);
  }
}

// One forward, then prompt log-probs and sampling per row. When every row is a
// plain greedy choice, only (id, logprob) per row leaves the backend.
// An embedding model's forward: every row is a prompt position of an embedding
// request; its last hidden state is pooled, and a request whose whole prompt is
// in finishes with its embedding.
void Engine::run_embedding_batch(BuiltBatch& built) {
  const EmbeddingHead& head = *model_.embedding_head();
  const int64_t H = model_.spec().hidden_size;
  const std::vector<float> hidden = model_.forward_hidden(built.forward, kv_, built.adapter_batch());
  for (size_t r = 0; r < built.rows.size(); ++r) {
    Sequence& seq = *built.rows[r].seq;
    const int pos = built.rows[r].position, last = static_cast<int>(seq.prompt_len) - 1;
    if (seq.finished) continue;
    const float* h = hidden.data() + static_cast<int64_t>(r) * H;
    seq.pooled.resize(H, 0.0);
    const bool take = head.pooling == EmbeddingHead::Pooling::Mean ||
                      (head.pooling == EmbeddingHead::Pooling::Cls && pos == 0) ||
                      (head.pooling == EmbeddingHead::Pooling::LastToken && pos == last);
    if (take)
      for (int64_t i = 0; i < H; ++i) seq.pooled[i] += h[i];
    if (pos != last) continue;
    if (head.pooling == EmbeddingHead::Pooling::Mean)
      for (double& v : seq.pooled) v /= static_cast<double>(seq.prompt_len);
    seq.info.embedding = head.project(seq.pooled);
    const bool finite = std::all_of(seq.info.embedding.begin(), seq.info.embedding.end(),
                                    [](float v) { return std::isfinite(v); });
    if (finite)
      finish(seq, FinishReason::Length);
    else
      finish(seq, FinishReason::Error, "the model produced a non-finite embedding (NaN or infinity)");
  }
}

void Engine::run_batch(BuiltBatch& built) {
  if (model_.embedding_head()) return run_embedding_batch(built);
  const std::vector<BatchRow>& rows = built.rows;
  bool greedy_only = true;
  for (const BatchRow& row : rows) {
    const SamplingParams& sp = row.seq->req.sampling;
    const bool prompt_row = row.position + 1 < static_cast<int>(row.seq->prompt_len);
    if (prompt_row || sp.sampling() || sp.repetition_penalty != 1.0 || sp.frequency_penalty != 0.0 ||
        sp.presence_penalty != 0.0 || row.seq->req.top_n_tokens > 0)
      greedy_only = false;
  }
  // Constrained rows' masks, worked out while the forward runs (each may need a
  // trie walk), on the mask workers.
  auto prepare_masks = [&] {
    std::vector<structured::Constraint*> constraints;
    for (const BatchRow& row : rows)
      if (row.seq->constraint && !row.seq->finished && row.position == static_cast<int>(row.seq->tokens.size()) - 1)
        constraints.push_back(row.seq->constraint.get());
    const auto t0 = Clock::now();
    mask_workers_->prepare(constraints);
    stats_.mask_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
  };
  auto allowed_for = [](Sequence& seq) -> AllowedTokens {
    if (!seq.constraint || seq.finished) return {};
    const auto& mask = seq.constraint->mask();  // kept by the constraint until the token is accepted
    return {mask->words.data(), mask->words.size()};
  };
  if (greedy_only) {
    std::vector<int32_t> ids;
    std::vector<float> logprobs;
    bool constrained = false;
    for (const BatchRow& row : rows) constrained = constrained || row.seq->constraint;
    auto masks = [&] {
      prepare_masks();
      std::vector<AllowedTokens> out;
      for (const BatchRow& row : rows) out.push_back(allowed_for(*row.seq));
      return out;
    };
    model_.forward_greedy(built.forward, kv_, built.adapter_batch(), ids, logprobs,
                          constrained ? std::function<std::vector<AllowedTokens>()>(masks) : nullptr);
    for (size_t r = 0; r < rows.size(); ++r)
      if (!rows[r].seq->finished) accept_token(*rows[r].seq, TokenChoice{ids[r], logprobs[r], {}});
    return;
  }
  // What each row needs: a prompt token's log-prob, a chosen token, or nothing
  // (a row whose result is not used asks for a log-prob nobody reads), worked
  // out while the forward runs.
  std::vector<bool> chooses(rows.size(), false);
  auto make_choices = [&] {
    prepare_masks();
    std::vector<RowChoice> choices(rows.size());
    for (size_t r = 0; r < rows.size(); ++r) {
      Sequence& seq = *rows[r].seq;
      const int pos = rows[r].position;
      choices[r].prompt_target = 0;
      if (seq.finished) continue;
      if (pos + 1 < static_cast<int>(seq.prompt_len)) {
        choices[r].prompt_target = seq.tokens[pos + 1];
      } else if (pos == static_cast<int>(seq.tokens.size()) - 1) {
        choices[r] = seq.sampler->next(seq.tokens, seq.generated);
        choices[r].allowed = allowed_for(seq);
        choices[r].top_n = seq.req.top_n_tokens;
        chooses[r] = true;
      }
    }
    return choices;
  };
  const std::vector<TokenChoice> chosen =
      model_.forward_choose(built.forward, kv_, built.adapter_batch(), make_choices, choose_token);
  for (size_t r = 0; r < rows.size(); ++r) {
    Sequence& seq = *rows[r].seq;
    if (seq.finished) continue;
    if (chooses[r])
      accept_token(seq, chosen[r]);
    else if (rows[r].position + 1 < static_cast<int>(seq.prompt_len))
      seq.prompt_logprobs[rows[r].position + 1] = chosen[r].logprob;
  }
}

void Engine::update_stats() {
  stats_.prefix_cached_blocks = prefix_cache_ ? prefix_cache_->cached_blocks() : 0;
  stats_.waiting = static_cast<int>(waiting_.size());
  stats_.running = static_cast<int>(running_.size());
  stats_.adapters.clear();
  for (auto& s : running_)
    if (s->uses_adapter()) ++stats_.adapters[s->req.adapter_id].running;
  for (auto& s : waiting_)
    if (s->uses_adapter()) ++stats_.adapters[s->req.adapter_id].waiting;
}

void Engine::run_until_idle() {
  while (!idle())
    if (!step() && !idle()) {
      if (!waiting_for_adapters_) throw std::runtime_error("scheduler made no progress");
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // a host-to-device copy is in flight
    }
}

}  // namespace lorax
