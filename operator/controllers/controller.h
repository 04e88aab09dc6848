// Runs a reconcile function over a work queue with N workers, with per-controller metrics.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "kube/workqueue.h"
#include "server/metrics/registry.h"

namespace lorax::op {

struct Result {
  bool requeue = false;          // try again with backoff (a partial failure that is not an error)
  int requeue_after_ms = 0;      // or after a fixed delay
};

class Controller {
public:
  using Reconcile = std::function<Result(const std::string& key)>;
  Controller(std::string name, metrics::Registry& reg, Reconcile fn);
  ~Controller();
  void enqueue(const std::string& key) { queue_.add(key); }
  void start(int workers);
  void stop();
  kube::WorkQueue& queue() { return queue_; }

private:
  void worker();
  std::string name_;
  kube::WorkQueue queue_;
  Reconcile fn_;
  std::vector<std::thread> threads_;
  metrics::CounterFamily& total_;
  metrics::Counter& errors_;
  metrics::Histogram& duration_;
};

}  // namespace lorax::op
