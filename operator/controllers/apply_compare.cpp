#include <functional>

#include "controllers/desired.h"
#include "controllers/labels.h"

namespace lorax::op {

json with_applied_hash(json obj) {
  if (obj["metadata"].contains("annotations")) obj["metadata"]["annotations"].erase(kAppliedHashAnnotation);
  if (obj["metadata"].contains("annotations") && obj["metadata"]["annotations"].empty())
    obj["metadata"].erase("annotations");
  // std::hash of the canonical dump (sorted keys) is stable within one build of the operator;
  // after an upgrade a changed hash costs one re-apply per object, which is harmless.
  size_t h = std::hash<std::string>{}(obj.dump());
  char buf[17];
  snprintf(buf, sizeof buf, "%016zx", h);
  obj["metadata"]["annotations"][kAppliedHashAnnotation] = buf;
  return obj;
}

bool is_subset(const json& desired, const json& observed) {
  if (desired.is_object()) {
    if (!observed.is_object()) return false;
    for (auto& [k, v] : desired.items()) {
      auto it = observed.find(k);
      if (it == observed.end() || !is_subset(v, *it)) return false;
    }
    return true;
  }
  if (desired.is_array()) {
    if (!observed.is_array() || observed.size() != desired.size()) return false;
    for (size_t i = 0; i < desired.size(); ++i)
      if (!is_subset(desired[i], observed[i])) return false;
    return true;
  }
  if (desired.is_number() && observed.is_number()) return desired.get<double>() == observed.get<double>();
  return desired == observed;
}

}  // namespace lorax::op
