// Status of LoraxDeployments and Adapters: pure functions of what was observed.
// lastTransitionTime only moves when a condition's status flips, so an unchanged
// world gives a byte-identical status (and the controller skips the write).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace lorax::op {

using json = nlohmann::json;

// Returns `conditions` with `type` set; keeps lastTransitionTime when status is unchanged.
json set_condition(json conditions, const std::string& type, bool status, const std::string& reason,
                   const std::string& message, long generation, const std::string& now);
// Status value ("True"/"False"/"Unknown") of a condition, "" when absent.
std::string condition_status(const json& obj, const std::string& type);

// `deployment` is the observed apps/v1 Deployment or null; `error` a reconcile failure or "".
json ldep_status(const json& ldep, const json& deployment, const std::vector<json>& adapters,
                 const std::string& error, const std::string& now);

struct PodLoad {
  std::string state;  // Registered | Loaded | Pending (registry not there yet) | Failed
  std::string message;
};
// `invalid`: why the Adapter cannot be served ("" when valid); `pods`: results per ready pod
// (only meaningful with preload).
json adapter_status(const json& adapter, const std::string& invalid_reason, const std::string& invalid,
                    const std::map<std::string, PodLoad>& pods, const std::string& now);

std::string now_rfc3339();

}  // namespace lorax::op
