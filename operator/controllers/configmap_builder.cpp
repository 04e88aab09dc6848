#include <algorithm>

#include "controllers/desired.h"
#include "controllers/labels.h"
#include "controllers/model_source.h"

namespace lorax::op {

json desired_adapter_configmap(const json& ldep, const std::vector<json>& adapters) {
  std::string name = ldep.at("metadata").at("name");
  json list = json::array();
  for (const auto& a : adapters) {
    if (a.at("metadata").contains("deletionTimestamp")) continue;  // leaving
    EngineAdapterRef ref;
    try {
      ref = engine_adapter_ref(a.at("spec").at("source").get<std::string>());
    } catch (const std::exception&) {
      continue;  // invalid: reported on the Adapter's status
    }
    json entry = {{"name", a.at("metadata").at("name")},
                  {"adapter_id", ref.adapter_id},
                  {"adapter_source", ref.adapter_source},
                  {"preload", a.at("spec").value("preload", false)}};
    // POST /adapters has no checksum field: the engine finds it here for url sources.
    if (a.at("spec").contains("sha256")) entry["sha256"] = a["spec"]["sha256"];
    list.push_back(entry);
  }
  // Sorted by name so the same set of adapters always gives the same bytes.
  std::sort(list.begin(), list.end(), [](const json& x, const json& y) { return x["name"] < y["name"]; });
  json obj = owned_object("v1", "ConfigMap", adapter_configmap_name(name), ldep);
  obj["data"] = {{"adapters.json", list.dump()}};
  return obj;
}

}  // namespace lorax::op
