#include "controllers/applier.h"

#include "controllers/desired.h"
#include "controllers/labels.h"
#include "kube/resource.h"

namespace lorax::op {

Applied ensure_applied(kube::Client& client, const json& desired_in, const std::optional<json>& observed_in,
                       bool observed_known) {
  json desired = with_applied_hash(desired_in);
  const json& m = desired["metadata"];
  kube::Resource r = kube::resource_for(desired["apiVersion"], desired["kind"]);
  std::string path = r.item(m.value("namespace", ""), m["name"]);
  std::optional<json> observed = observed_in;
  if (!observed_known) {
    try {
      observed = client.get(path);
    } catch (const kube::ApiError& e) {
      if (e.status != 404) throw;
    }
  }
  if (observed && is_subset(desired, *observed)) return {ApplyOutcome::Unchanged, *observed};
  json result = client.apply(path, desired, kFieldManager);
  return {observed ? ApplyOutcome::Updated : ApplyOutcome::Created, result};
}

bool delete_if_owned(kube::Client& client, const std::string& api_version, const std::string& kind,
                     const std::string& ns, const std::string& name, const std::string& owner_uid) {
  kube::Resource r = kube::resource_for(api_version, kind);
  json obj;
  try {
    obj = client.get(r.item(ns, name));
  } catch (const kube::ApiError& e) {
    if (e.status == 404) return false;
    throw;
  }
  for (const auto& ref : obj["metadata"].value("ownerReferences", json::array()))
    if (ref.value("uid", "") == owner_uid && ref.value("controller", false)) {
      client.remove(r.item(ns, name));
      return true;
    }
  return false;
}

}  // namespace lorax::op
