// Which adapters may admit new requests (LoRAX's adapter exchange). At most
// `cap` distinct adapters are in the running batch or admitting (the base model
// is not counted). Adapters of waiting requests are activated least-recently-active
// first while the cap allows; when some still wait, adapters that have admitted for
// a whole cycle stop admitting (their running requests finish normally), so the
// batch drains toward the waiting ones and no adapter starves. A cycle counts from
// an adapter's first admission, not its activation: one that waits for its device
// copy is not rotated out before it ran at all.
#pragma once
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace lorax {

class AdapterRotation {
 public:
  using Clock = std::chrono::steady_clock;

  // `in_batch`: adapters of running requests; `waiting`: adapters of waiting requests in queue order.
  void update(Clock::time_point now, const std::set<std::string>& in_batch, const std::vector<std::string>& waiting,
              size_t cap, double cycle_seconds);
  bool admitting(const std::string& id) const { return admitting_.count(id) > 0; }
  // A request of an admitting adapter joined the running batch.
  void admitted(const std::string& id, Clock::time_point now);
  // Admitting adapters, most recently activated last.
  std::vector<std::string> admitting_in_order() const;

 private:
  bool activate(Clock::time_point now, const std::vector<std::string>& pending, const std::set<std::string>& in_batch,
                size_t cap);
  // Admitting adapters: when each was activated, and when it first admitted
  // (time_point::max() until then); when each adapter last stopped admitting.
  struct Admitting {
    Clock::time_point activated, first_admission = Clock::time_point::max();
  };
  std::map<std::string, Admitting> admitting_;
  std::map<std::string, Clock::time_point> last_active_;
};

}  // namespace lorax
