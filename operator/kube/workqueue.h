// A work queue of object keys ("ns/name"), modelled on client-go's: a key is queued at
// most once, a key being processed is not handed to a second worker (it is re-queued
// when done), and failed keys come back after a per-key exponential backoff.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "server/metrics/registry.h"

namespace lorax::kube {

class WorkQueue {
public:
  using Clock = std::chrono::steady_clock;
  WorkQueue(std::string name, metrics::Registry* registry, std::chrono::milliseconds base_delay = std::chrono::milliseconds(50),
            std::chrono::milliseconds max_delay = std::chrono::seconds(60));
  ~WorkQueue();

  void add(const std::string& key);
  void add_after(const std::string& key, std::chrono::milliseconds delay);
  // add_after with this key's next backoff (base * 2^failures, capped).
  void add_rate_limited(const std::string& key);
  // Resets the key's backoff after a success.
  void forget(const std::string& key);
  int failures(const std::string& key);

  // Blocks for the next key; nullopt once shut down.
  std::optional<std::string> get();
  void done(const std::string& key);
  void shutdown();
  size_t len();

private:
  void timer_loop();
  void update_depth();
  std::string name_;
  std::mutex mu_;
  std::condition_variable cv_, timer_cv_;
  std::deque<std::string> queue_;
  std::set<std::string> dirty_, processing_;
  std::map<std::string, Clock::time_point> added_at_;
  std::multimap<Clock::time_point, std::string> delayed_;
  std::map<std::string, int> failures_;
  std::chrono::milliseconds base_, max_;
  bool shutdown_ = false;
  std::thread timer_;
  metrics::Gauge* depth_ = nullptr;
  metrics::Counter* adds_ = nullptr;
  metrics::Counter* retries_ = nullptr;
  metrics::Histogram* latency_ = nullptr;
};

}  // namespace lorax::kube
