#include "kube/workqueue.h"

namespace lorax::kube {

WorkQueue::WorkQueue(std::string name, metrics::Registry* reg, std::chrono::milliseconds base,
                     std::chrono::milliseconds max)
    : name_(std::move(name)), base_(base), max_(max) {
  if (reg) {
    depth_ = &reg->gauge("lorax_operator_workqueue_depth", "Keys waiting in the work queue", {"queue"}).labels({name_});
    adds_ = &reg->counter("lorax_operator_workqueue_adds_total", "Keys added to the work queue", {"queue"}).labels({name_});
    retries_ = &reg->counter("lorax_operator_workqueue_retries_total", "Keys re-queued with backoff", {"queue"})
                    .labels({name_});
    latency_ = &reg->histogram("lorax_operator_workqueue_queue_duration_seconds",
                               "Time a key waits in the queue before a worker takes it", {"queue"},
                               metrics::exponential_buckets(0.001, 4, 9))
                    .labels({name_});
  }
  timer_ = std::thread([this] { timer_loop(); });
}

WorkQueue::~WorkQueue() {
  shutdown();
  if (timer_.joinable()) timer_.join();
}

void WorkQueue::update_depth() {
  if (depth_) depth_->set(static_cast<double>(queue_.size()));
}

void WorkQueue::add(const std::string& key) {
  std::lock_guard lock(mu_);
  if (shutdown_ || dirty_.count(key)) return;
  dirty_.insert(key);
  if (adds_) adds_->inc();
  added_at_.emplace(key, Clock::now());
  if (processing_.count(key)) return;  // done() re-queues it
  queue_.push_back(key);
  update_depth();
  cv_.notify_one();
}

void WorkQueue::add_after(const std::string& key, std::chrono::milliseconds delay) {
  if (delay.count() <= 0) return add(key);
  std::lock_guard lock(mu_);
  if (shutdown_) return;
  delayed_.emplace(Clock::now() + delay, key);
  timer_cv_.notify_one();
}

void WorkQueue::add_rate_limited(const std::string& key) {
  std::chrono::milliseconds delay;
  {
    std::lock_guard lock(mu_);
    int n = failures_[key]++;
    delay = base_ * (1LL << std::min(n, 20));
    if (delay > max_) delay = max_;
  }
  if (retries_) retries_->inc();
  add_after(key, delay);
}

void WorkQueue::forget(const std::string& key) {
  std::lock_guard lock(mu_);
  failures_.erase(key);
}

int WorkQueue::failures(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

std::optional<std::string> WorkQueue::get() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return shutdown_ || !queue_.empty(); });
  if (queue_.empty()) return std::nullopt;
  std::string key = queue_.front();
  queue_.pop_front();
  dirty_.erase(key);
  processing_.insert(key);
  auto it = added_at_.find(key);
  if (it != added_at_.end()) {
    if (latency_) latency_->observe(std::chrono::duration<double>(Clock::now() - it->second).count());
    added_at_.erase(it);
  }
  update_depth();
  return key;
}

void WorkQueue::done(const std::string& key) {
  std::lock_guard lock(mu_);
  processing_.erase(key);
  if (dirty_.count(key) && !shutdown_) {
    queue_.push_back(key);
    update_depth();
    cv_.notify_one();
  }
}

void WorkQueue::shutdown() {
  std::lock_guard lock(mu_);
  shutdown_ = true;
  cv_.notify_all();
  timer_cv_.notify_all();
}

size_t WorkQueue::len() {
  std::lock_guard lock(mu_);
  return queue_.size();
}

void WorkQueue::timer_loop() {
  std::unique_lock lock(mu_);
  while (!shutdown_) {
    if (delayed_.empty()) {
      timer_cv_.wait(lock);
      continue;
    }
    auto first = delayed_.begin()->first;
    if (Clock::now() < first) {
      timer_cv_.wait_until(lock, first);
      continue;
    }
    std::string key = delayed_.begin()->second;
    delayed_.erase(delayed_.begin());
    lock.unlock();
    add(key);
    lock.lock();
  }
}

}  // namespace lorax::kube
