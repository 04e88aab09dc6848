#include "kube/log.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace lorax::kube {

std::string micro_time_now() {
  using namespace std::chrono;
  auto now = system_clock::now();
  std::time_t t = system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%06dZ", buf,
                static_cast<int>(duration_cast<microseconds>(now.time_since_epoch()).count() % 1000000));
  return out;
}

void log(const std::string& level, const std::string& msg, const nlohmann::json& fields) {
  const std::string ts = micro_time_now();
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
