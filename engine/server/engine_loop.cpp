#include "server/engine_loop.h"

#include <cstdio>

namespace lorax::server {

namespace {
double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
}  // namespace

struct EngineLoop::Active {
  std::shared_ptr<Sink> sink;
  Clock::time_point received, last_token;
  size_t prompt_len = 0;
  bool any_token = false;
  bool done = false;
  std::string failure;  // set when a failed step cancels the request: reported as a generation error
};

EngineLoop::EngineLoop(Engine& engine, ServerMetrics& metrics, int max_waiting_requests)
    : engine_(engine), metrics_(metrics), max_waiting_(max_waiting_requests) {
  doorbell_->loop = this;
  metrics_.kv_cache_blocks_total.set(engine_.kv().allocator().num_blocks());
  publish_gauges();
}

void EngineLoop::adapter_loaded() {
  {
    std::lock_guard lock(mu_);
    adapter_event_ = true;
  }
  wake_.notify_one();
}

size_t EngineLoop::take_loaded(std::vector<Job>& ready) {
  size_t gone = 0;
  for (auto it = pending_.begin(); it != pending_.end();) {
    Job& job = *it;
    if (!job.sink->alive()) {  // the client left while its adapter loaded
      metrics_.cancelled.inc();
      metrics_.failure("cancelled");
      ++gone;
    } else if (!job.adapter->done()) {
      ++it;
      continue;
    } else if (std::exception_ptr error = job.adapter->error()) {
      int status = 422;
      std::string message = "adapter load failed";
      try {
        std::rethrow_exception(error);
      } catch (const AdapterError& e) {
        status = adapter_error_status(e);
        message = e.what();
      } catch (const std::exception& e) {
        message = e.what();
      }
      const std::string type = status == 404 ? "not_found" : "validation";
      metrics_.failure(type);
      job.sink->on_rejected(message, status, type);
      ++gone;
    } else {
      // Counted once the load succeeded: ids that fail never become a series.
      if (adapter_metrics_) adapter_metrics_->requests.labels({adapter_label(job.request.adapter_id)}).inc();
      ready.push_back(std::move(job));
    }
    it = pending_.erase(it);
  }
  return gone;
}

EngineLoop::~EngineLoop() { stop(); }

void EngineLoop::start() { thread_ = std::thread([this] { run(); }); }

EngineLoop::Admit EngineLoop::submit(Job job) {
  std::vector<Job> one;
  one.push_back(std::move(job));
  return submit(std::move(one));
}

EngineLoop::Admit EngineLoop::submit(std::vector<Job> jobs) {
  {
    std::lock_guard lock(mu_);
    if (closed_) return Admit::ShuttingDown;
    // Everything accepted and not yet running waits, including jobs the engine thread has
    // taken from the inbox but not yet admitted (counting only inbox_ + the engine's queue
    // let a burst in during a step reach about twice the limit). A request's
    // sequences are admitted together or not at all.
    const int waiting_after = static_cast<int>(in_flight_.load()) - engine_running_ + static_cast<int>(jobs.size());
    if (waiting_after > max_waiting_ && !jobs.empty()) return Admit::QueueFull;
    in_flight_ += jobs.size();
    for (Job& job : jobs) inbox_.push_back(std::move(job));
    metrics_.queue_size.set(static_cast<double>(inbox_.size() + engine_waiting_));
  }
  wake_.notify_one();
  return Admit::Accepted;
}

void EngineLoop::close() {
  std::lock_guard lock(mu_);
  closed_ = true;
}

bool EngineLoop::drain(Clock::time_point deadline) {
  std::unique_lock lock(mu_);
  return drained_.wait_until(lock, deadline, [&] { return in_flight_.load() == 0; });
}

void EngineLoop::stop() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    stop_requested_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(doorbell_->mu);
  doorbell_->loop = nullptr;
}

size_t EngineLoop::admit(std::vector<Job>& jobs) {
  size_t rejected = 0;
  for (Job& job : jobs) {
    auto act = std::make_shared<Active>();
    act->sink = job.sink;
    act->received = job.received;
    act->prompt_len = job.request.prompt_ids.size();
    std::weak_ptr<Active> weak = act;
    job.request.on_token = [this, weak](const GeneratedToken& tok) {
      auto a = weak.lock();
      if (!a) return;
      const auto now = Clock::now();
      if (!a->any_token) {
        metrics_.time_to_first_token.observe(seconds(now - a->received));
        a->any_token = true;
      } else {
        metrics_.inter_token_latency.observe(seconds(now - a->last_token));
      }
      a->last_token = now;
      try {
        a->sink->on_token(tok);
      } catch (const std::exception& e) {  // one response's failure must not fail the whole batch
        std::fprintf(stderr, "lorax-engine: writing a token failed: %s\n", e.what());
      }
    };
    job.request.on_finish = [this, act](const FinishInfo& finish_info) {
      act->done = true;
      FinishInfo failed;
      if (!act->failure.empty()) {
        failed = finish_info;
        failed.reason = FinishReason::Error;
        failed.error = act->failure;
      }
      const FinishInfo& info = act->failure.empty() ? finish_info : failed;
      const double total = seconds(Clock::now() - act->received);
      if (info.reason == FinishReason::Cancelled) {
        metrics_.cancelled.inc();
        metrics_.failure("cancelled");
      } else if (info.reason == FinishReason::Error) {
        metrics_.failure("generation");
      } else {
        metrics_.request_success.inc();
        metrics_.request_duration.observe(total);
        // Inbox time counts as queueing too.
        metrics_.request_queue_duration.observe(total - info.inference_seconds);
        metrics_.request_inference_duration.observe(info.inference_seconds);
        if (!info.tokens.empty())
          metrics_.request_mean_time_per_token_duration.observe(info.inference_seconds / info.tokens.size());
        metrics_.request_input_length.observe(static_cast<double>(act->prompt_len));
        metrics_.request_generated_tokens.observe(static_cast<double>(info.tokens.size()));
      }
      try {
        act->sink->on_finish(info);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "lorax-engine: writing a response failed: %s\n", e.what());
      }
    };
    act->sink->on_start();
    try {
      const uint64_t id = engine_.submit(std::move(job.request));
      if (!act->done) active_[id] = act;
    } catch (const std::exception& e) {
      metrics_.failure("validation");
      act->sink->on_rejected(e.what());
      ++rejected;
    }
  }
  return rejected;
}

void EngineLoop::retire(Active& act) {
  try {
    act.sink->on_retired();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lorax-engine: writing a response failed: %s\n", e.what());
  }
}

void EngineLoop::cancel_dead() {
  std::vector<uint64_t> dead;
  for (auto& [id, act] : active_)
    if (!act->done && !act->sink->alive()) dead.push_back(id);
  for (uint64_t id : dead) engine_.cancel(id);
}

void EngineLoop::publish_gauges() {
  const EngineStats& st = engine_.stats();
  metrics_.batch_current_size.set(st.running);
  metrics_.active_adapters.set(st.running > 0 ? st.active_adapters : 0);
  metrics_.batch_max_size.set(st.max_batch_size);
  metrics_.batch_max_adapters.set(st.max_adapters_in_batch);
  metrics_.kv_cache_usage_ratio.set(engine_.kv().usage_ratio());
  metrics_.kv_cache_blocks_free.set(engine_.kv().allocator().num_free());
  if (adapter_metrics_) {
    std::map<std::string, AdapterQueueState> queues = st.adapters;
    for (const Job& job : pending_) ++queues[job.request.adapter_id].waiting;
    adapter_metrics_->publish_queues(queues);
  }
  // The engine's counters only grow: forward what was added since the last step.
  auto forward = [](metrics::Counter& counter, uint64_t now, uint64_t& seen) {
    if (now > seen) counter.inc(static_cast<double>(now - seen));
    seen = now;
  };
  forward(metrics_.preemptions, st.preemptions, preemptions_seen_);
  forward(metrics_.prefix_cache_queries, st.prefix_queries, prefix_queries_seen_);
  forward(metrics_.prefix_cache_hits, st.prefix_hits, prefix_hits_seen_);
  metrics_.prefix_cache_blocks.set(st.prefix_cached_blocks);
}

void EngineLoop::run() {
  bool stalled = false;  // the last step made no progress: wait a little before retrying
  for (;;) {
    std::vector<Job> jobs;
    {
      std::unique_lock lock(mu_);
      auto has_work = [&] {
        return stop_requested_ || !inbox_.empty() || adapter_event_ || (!engine_.idle() && !stalled);
      };
      if (stalled)
        wake_.wait_for(lock, std::chrono::milliseconds(5), has_work);
      else
        wake_.wait(lock, has_work);
      if (stop_requested_) break;
      jobs.swap(inbox_);
      adapter_event_ = false;
    }
    std::vector<Job> ready;
    for (Job& job : jobs) {
      if (!job.adapter) {
        ready.push_back(std::move(job));
        continue;
      }
      if (!job.adapter->done()) job.adapter->when_done([bell = std::weak_ptr<Doorbell>(doorbell_)] {
        if (auto b = bell.lock()) {
          std::lock_guard lock(b->mu);
          if (b->loop) b->loop->adapter_loaded();
        }
      });
      pending_.push_back(std::move(job));
    }
    size_t finished = take_loaded(ready);
    finished += admit(ready);  // rejected at once count as finished
    cancel_dead();
    bool progressed = false;
    if (!engine_.idle()) {
      try {
        progressed = engine_.step();
      } catch (const std::exception& e) {
        // A failed forward must not take the server down: fail what is in flight.
        std::fprintf(stderr, "lorax-engine: step failed: %s\n", e.what());
        std::vector<uint64_t> ids;
        for (auto& [id, act] : active_) {
          act->failure = std::string("generation failed: ") + e.what();
          ids.push_back(id);
        }
        for (uint64_t id : ids) engine_.cancel(id);
      }
    }
    stalled = !progressed && !engine_.idle();
    // Retire finished requests; the others may send what this step produced.
    for (auto it = active_.begin(); it != active_.end();) {
      if (it->second->done) {
        retire(*it->second);
        it = active_.erase(it);
        ++finished;
      } else {
        if (progressed) it->second->sink->on_step_end();
        ++it;
      }
    }
    publish_gauges();
    {
      std::lock_guard lock(mu_);
      engine_waiting_ = engine_.stats().waiting + static_cast<int>(pending_.size());
      engine_running_ = engine_.stats().running;
      metrics_.queue_size.set(static_cast<double>(inbox_.size() + engine_waiting_));
      in_flight_ -= finished;
    }
    drained_.notify_all();
  }
  // Shutting down: whatever is left is cancelled so every client gets an answer.
  std::vector<Job> left;
  {
    std::lock_guard lock(mu_);
    left.swap(inbox_);
  }
  for (auto* list : {&left, &pending_})
    for (Job& job : *list) job.sink->on_rejected("the server is shutting down", 503, "overloaded");
  pending_.clear();
  std::vector<uint64_t> ids;
  for (auto& [id, act] : active_) ids.push_back(id);
  for (uint64_t id : ids) engine_.cancel(id);
  for (auto& [id, act] : active_) retire(*act);
  active_.clear();
  publish_gauges();
  in_flight_ = 0;
  drained_.notify_all();
}

}  // namespace lorax::server
