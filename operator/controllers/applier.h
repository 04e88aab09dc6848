// Brings one owned object to its desired state with server-side apply, but only when
// the observed object differs: in steady state this makes no write at all.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>

#include "kube/client.h"

namespace lorax::op {

using json = nlohmann::json;

enum class ApplyOutcome { Unchanged, Created, Updated };

struct Applied {
  ApplyOutcome outcome;
  json object;  // the object as the server has it now
};

// `observed`: the current object if the caller has it cached; otherwise it is fetched.
Applied ensure_applied(kube::Client& client, const json& desired, const std::optional<json>& observed = std::nullopt,
                       bool observed_known = false);

// Deletes ns/name of `kind` if it exists and is controlled by owner_uid.
bool delete_if_owned(kube::Client& client, const std::string& api_version, const std::string& kind,
                     const std::string& ns, const std::string& name, const std::string& owner_uid);

}  // namespace lorax::op
