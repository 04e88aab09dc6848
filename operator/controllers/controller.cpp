#include "controllers/controller.h"

#include <chrono>

#include "kube/log.h"

namespace lorax::op {

Controller::Controller(std::string name, metrics::Registry& reg, Reconcile fn)
    : name_(std::move(name)),
      queue_(name_, &reg),
      fn_(std::move(fn)),
      total_(reg.counter("lorax_operator_reconcile_total", "Reconciles by controller and result", {"controller", "result"})),
      errors_(reg.counter("lorax_operator_reconcile_errors_total", "Reconciles that failed", {"controller"}).labels({name_})),
      duration_(reg.histogram("lorax_operator_reconcile_duration_seconds", "Time per reconcile", {"controller"},
                              metrics::exponential_buckets(0.001, 4, 9))
                    .labels({name_})) {}

Controller::~Controller() { stop(); }

void Controller::start(int workers) {
  for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { worker(); });
}

void Controller::stop() {
  queue_.shutdown();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

void Controller::worker() {
  while (auto key = queue_.get()) {
    auto t0 = std::chrono::steady_clock::now();
    std::string result = "success";
    try {
      Result r = fn_(*key);
      if (r.requeue_after_ms > 0) {
        queue_.forget(*key);
        queue_.add_after(*key, std::chrono::milliseconds(r.requeue_after_ms));
        result = "requeue";
      } else if (r.requeue) {
        queue_.add_rate_limited(*key);
        result = "requeue";
      } else {
        queue_.forget(*key);
      }
    } catch (const std::exception& e) {
      errors_.inc();
      result = "error";
      kube::log_error("reconcile failed", {{"controller", name_}, {"key", *key}, {"error", e.what()}});
      queue_.add_rate_limited(*key);
    }
    duration_.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    total_.labels({name_, result}).inc();
    queue_.done(*key);
  }
}

}  // namespace lorax::op
