// Structured JSON logs, one object per line on stderr.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace lorax::kube {

// Now as RFC 3339 UTC with microseconds (Lease times, log lines).
std::string micro_time_now();

void log(const std::string& level, const std::string& msg, const nlohmann::json& fields = nlohmann::json::object());
inline void log_info(const std::string& msg, const nlohmann::json& f = nlohmann::json::object()) { log("info", msg, f); }
inline void log_error(const std::string& msg, const nlohmann::json& f = nlohmann::json::object()) { log("error", msg, f); }

}  // namespace lorax::kube
