#include <algorithm>

#include "controllers/adapter_plan.h"
#include "controllers/desired.h"
#include "controllers/labels.h"

namespace lorax::op {

json desired_adapter_configmap(const json& ldep, const std::vector<json>& adapters, const AdapterTokens& tokens) {
  std::string name = ldep.at("metadata").at("name");
  // By name first: when two Adapters claim one id, the first by name keeps it (the other
  // reports DuplicateId, see adapter_reconciler.cpp).
  std::vector<json> by_name = adapters;
  std::sort(by_name.begin(), by_name.end(), [](const json& x, const json& y) {
    return x.at("metadata").value("name", "") < y.at("metadata").value("name", "");
  });
  json list = json::array();
  for (const auto& a : by_name) {
    if (a.at("metadata").contains("deletionTimestamp")) continue;  // leaving
    AdapterPlan p = plan_adapter(a, ldep);
    if (!p.problem.empty()) continue;                                // reported on the Adapter's status
    if (!p.token_key.empty() && !tokens.count(p.token_key)) continue;  // its Secret is missing: reported there too
    list.push_back(registry_entry(p));
  }
  // Sorted by id so the same set of adapters always gives the same bytes.
  std::stable_sort(list.begin(), list.end(), [](const json& x, const json& y) { return x["id"] < y["id"]; });
  list.erase(std::unique(list.begin(), list.end(), [](const json& x, const json& y) { return x["id"] == y["id"]; }),
             list.end());
  json obj = owned_object("v1", "ConfigMap", adapter_configmap_name(name), ldep);
  obj["data"] = {{"adapters.json", list.dump()}};
  return obj;
}

json desired_adapter_token_secret(const json& ldep, const AdapterTokens& tokens) {
  json obj = owned_object("v1", "Secret", adapter_token_secret_name(ldep.at("metadata").at("name")), ldep);
  obj["type"] = "Opaque";
  json data = json::object();
  for (const auto& [key, b64] : tokens) data[key] = b64;
  obj["data"] = data;
  return obj;
}

}  // namespace lorax::op
