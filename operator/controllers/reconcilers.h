// The two reconcile functions (key "namespace/name" -> Result).
#pragma once

#include <string>

#include "controllers/context.h"
#include "controllers/controller.h"
#include "controllers/desired.h"

namespace lorax::op {

Result reconcile_deployment(Context& ctx, const std::string& key);
Result reconcile_adapter(Context& ctx, const std::string& key);

std::pair<std::string, std::string> split_key(const std::string& key);
// Adapters in `ns` whose spec.deploymentRef.name is `ldep_name`.
std::vector<json> adapters_of(const Caches& c, const std::string& ns, const std::string& ldep_name);
// The tokens of the Adapters' spec.tokenSecretRef Secrets that exist (missing ones are left out).
AdapterTokens adapter_tokens(kube::Client& client, const std::string& ns, const std::vector<json>& adapters);

}  // namespace lorax::op
