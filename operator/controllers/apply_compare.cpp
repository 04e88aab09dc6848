#include <cmath>
#include <functional>
#include <optional>

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

// Kubernetes resource quantities ("16Gi", "500m", "1e3", 17179869184) as a number, so a value the
// API server canonicalized on write ("1024Mi" -> "1Gi") still counts as unchanged.
static std::optional<long double> quantity(const json& v) {
  if (v.is_number()) return v.get<long double>();
  if (!v.is_string()) return std::nullopt;
  const std::string& s = v.get_ref<const std::string&>();
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.' || s[i] == '+' || s[i] == '-')) ++i;
  if (i == 0) return std::nullopt;
  long double num;
  try {
    size_t used = 0;
    num = std::stold(s.substr(0, i), &used);
    if (used != i) return std::nullopt;
  } catch (const std::exception&) {
    return std::nullopt;
  }
  std::string suffix = s.substr(i);
  static const std::pair<const char*, long double> kSuffixes[] = {
      {"", 1},         {"m", 1e-3L},    {"k", 1e3L},          {"M", 1e6L},          {"G", 1e9L},
      {"T", 1e12L},    {"P", 1e15L},    {"E", 1e18L},         {"Ki", 1024.0L},      {"Mi", 1048576.0L},
      {"Gi", 1073741824.0L}, {"Ti", 1099511627776.0L}, {"Pi", 1125899906842624.0L}, {"Ei", 1152921504606846976.0L}};
  for (auto& [suf, mul] : kSuffixes)
    if (suffix == suf) return num * mul;
  if (suffix.size() > 1 && (suffix[0] == 'e' || suffix[0] == 'E')) {
    try {
      size_t used = 0;
      int exp = std::stoi(suffix.substr(1), &used);
      if (used == suffix.size() - 1) return num * std::pow(10.0L, exp);
    } catch (const std::exception&) {
    }
  }
  return std::nullopt;
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
  if (desired == observed) return true;
  if (desired.is_string() || observed.is_string()) {
    auto a = quantity(desired), b = quantity(observed);
    if (a && b) return std::fabs(static_cast<double>(*a - *b)) <= 1e-9 * std::max(1.0, std::fabs(static_cast<double>(*a)));
  }
  return false;
}

}  // namespace lorax::op
