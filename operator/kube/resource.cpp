#include "kube/resource.h"

#include <stdexcept>

namespace lorax::kube {

Resource resource_for(const std::string& api_version, const std::string& kind) {
  using namespace resources;
  for (const Resource* r : {&kLoraxDeployments, &kAdapters, &kDeployments, &kPods, &kServices, &kConfigMaps, &kSecrets, &kEvents,
                            &kPdbs, &kHpas, &kServiceMonitors, &kLeases}) {
    std::string av = r->group.empty() ? r->version : r->group + "/" + r->version;
    if (av != api_version) continue;
    std::string k = kind;
    for (auto& c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string plural = k == "poddisruptionbudget" ? "poddisruptionbudgets"
                         : k == "horizontalpodautoscaler" ? "horizontalpodautoscalers"
                                                          : k + "s";
    if (plural == r->plural) return *r;
  }
  throw std::invalid_argument("unknown kind " + api_version + "/" + kind);
}

std::string url_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') out += static_cast<char>(c);
    else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

}  // namespace lorax::kube
