#include "scheduler/adapter_rotation.h"

#include <algorithm>

namespace lorax {

void AdapterRotation::admitted(const std::string& id, Clock::time_point now) {
  auto it = admitting_.find(id);
  if (it != admitting_.end() && it->second.first_admission == Clock::time_point::max()) it->second.first_admission = now;
}

std::vector<std::string> AdapterRotation::admitting_in_order() const {
  std::vector<std::pair<Clock::time_point, std::string>> by_time;
  for (auto& [id, a] : admitting_) by_time.push_back({a.activated, id});
  std::stable_sort(by_time.begin(), by_time.end(), [](auto& a, auto& b) { return a.first < b.first; });
  std::vector<std::string> out;
  for (auto& [t, id] : by_time) out.push_back(id);
  return out;
}

// In order; the first one that does not fit stops the rest (so the queue's order holds).
bool AdapterRotation::activate(Clock::time_point now, const std::vector<std::string>& pending,
                               const std::set<std::string>& in_batch, size_t cap) {
  for (const std::string& id : pending) {
    if (admitting_.count(id)) continue;
    std::set<std::string> distinct = in_batch;
    for (auto& [a, t] : admitting_) distinct.insert(a);
    if (!distinct.count(id) && distinct.size() >= cap) return false;
    admitting_[id] = {now};
  }
  return true;
}

void AdapterRotation::update(Clock::time_point now, const std::set<std::string>& in_batch,
                             const std::vector<std::string>& waiting, size_t cap, double cycle_seconds) {
  cap = std::max<size_t>(cap, 1);
  std::set<std::string> waiting_ids;
  std::vector<std::string> pending;
  for (const std::string& id : waiting)
    if (!id.empty() && waiting_ids.insert(id).second && !admitting_.count(id)) pending.push_back(id);
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
  if (activate(now, pending, in_batch, cap)) return;
  const auto cycle = std::chrono::duration<double>(cycle_seconds);
  for (auto it = admitting_.begin(); it != admitting_.end();) {
    const Clock::time_point first = it->second.first_admission;
    if (first != Clock::time_point::max() && now - first >= cycle) {
      last_active_[it->first] = now;
      it = admitting_.erase(it);
    } else {
      ++it;
    }
  }
  activate(now, pending, in_batch, cap);
}

}  // namespace lorax
