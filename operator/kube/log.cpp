#include "kube/log.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace lorax::kube {

void log(const std::string& level, const std::string& msg, const nlohmann::json& fields) {
  using namespace std::chrono;
  auto now = system_clock::now();
  std::time_t t = system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  int ms = static_cast<int>(duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000);
  char ts[48];
  std::snprintf(ts, sizeof ts, "%s.%03dZ", buf, ms);
  nlohmann::json line = {{"ts", ts}, {"level", level}, {"msg", msg}};
  if (fields.is_object())
    for (auto& [k, v] : fields.items()) line[k] = v;
  static std::mutex mu;
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::lock_guard lock(mu);
  std::fputs(text.c_str(), stderr);
  std::fflush(stderr);
}

}  // namespace lorax::kube
