// What the scheduler needs of an adapter store: adapters made resident on the
// device ahead of their turn, without waiting, and leases that keep a resident
// adapter from being evicted while a running request uses it. The AdapterStore
// implements it; scheduler tests use a fake.
#pragma once
#include <memory>
#include <set>
#include <string>

namespace lorax {

struct AdapterWeights;

class AdapterResidency {
 public:
  virtual ~AdapterResidency() = default;

  enum class State {
    Resident,  // lease() hands out its weights now
    Pending,   // on its way (a host-to-device copy in flight)
    NoRoom,    // every device slot holds an adapter in `keep` or in use
    Failed,    // it can never be made resident (see error); its requests fail
  };
  struct Result {
    State state = State::Pending;
    std::string error;
  };
  // Asks for `id` on the device without blocking. To make room it may evict only
  // resident adapters that no lease holds and that are not in `keep`.
  virtual Result make_resident(const std::string& id, const std::set<std::string>& keep) = 0;
  // The device weights of a resident adapter, held until the pointer goes; null
  // when it is not resident.
  virtual std::shared_ptr<const AdapterWeights> lease(const std::string& id) = 0;
  // How many adapters the device holds at once.
  virtual int device_slots() const = 0;
};

}  // namespace lorax
