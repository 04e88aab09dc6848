// Leader election through a coordination.k8s.io/v1 Lease, as client-go does it: the
// holder renews spec.renewTime; another candidate takes over once it has seen no
// renewal for leaseDurationSeconds (measured on its own clock, so skew does not matter).
// Writes are PUTs carrying resourceVersion, so two candidates cannot both win.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>

#include "kube/client.h"

namespace lorax::kube {

struct LeaderConfig {
  std::string lease_namespace = "default";
  std::string lease_name = "lorax-operator";
  std::string identity;
  int lease_duration_s = 15;
  int renew_deadline_s = 10;
  double retry_period_s = 2;
};

class LeaderElector {
public:
  LeaderElector(Client& client, LeaderConfig cfg);
  // Blocks until this candidate holds the lease (or stop is set; then returns false).
  bool acquire(const std::atomic<bool>& stop);
  // Renews every retry period until a renewal fails for renew_deadline; then returns.
  void hold(const std::atomic<bool>& stop);
  // Clears holderIdentity so a standby can take over at once.
  void release();
  bool leading() const { return leading_; }

private:
  bool try_acquire_or_renew();
  Client& client_;
  LeaderConfig cfg_;
  std::atomic<bool> leading_{false};
  std::string observed_rv_;
  std::chrono::steady_clock::time_point observed_at_;
};

// RFC 3339 with microseconds (metav1.MicroTime).

}  // namespace lorax::kube
