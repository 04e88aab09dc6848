#include "controllers/desired.h"
#include "controllers/labels.h"

namespace lorax::op {

json desired_service(const json& ldep) {
  std::string name = ldep.at("metadata").at("name");
  json svc = ldep.at("spec").value("service", json::object());
  json obj = owned_object("v1", "Service", name, ldep);
  obj["spec"] = {{"type", svc.value("type", "ClusterIP")},
                 {"selector", selector_labels(name)},
                 {"ports", {{{"name", "http"}, {"port", svc.value("port", 80)}, {"targetPort", "http"},
                             {"protocol", "TCP"}}}}};
  return obj;
}

json desired_service_monitor(const json& ldep) {
  std::string name = ldep.at("metadata").at("name");
  json obj = owned_object("monitoring.coreos.com/v1", "ServiceMonitor", name, ldep);
  obj["spec"] = {{"selector", {{"matchLabels", selector_labels(name)}}},
                 {"endpoints", {{{"port", "http"}, {"path", "/metrics"}, {"interval", "15s"}}}}};
  return obj;
}

}  // namespace lorax::op
