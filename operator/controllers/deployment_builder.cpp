#include <set>

#include "controllers/desired.h"
#include "controllers/labels.h"
#include "controllers/model_source.h"

namespace lorax::op {

static json http_probe(int period, int failures, int initial_delay = 0) {
  json p = {{"httpGet", {{"path", "/health"}, {"port", "http"}}},
            {"periodSeconds", period},
            {"failureThreshold", failures},
            {"timeoutSeconds", 5}};
  if (initial_delay) p["initialDelaySeconds"] = initial_delay;
  return p;
}

// Volumes for the model: pvc -> the claim (read-only), file -> hostPath, hf -> a cache emptyDir.
static void add_model_volume(const Source& src, const Defaults& d, json& volumes, json& mounts, json& env) {
  switch (src.kind) {
    case SourceKind::Pvc:
      volumes.push_back({{"name", "model"}, {"persistentVolumeClaim", {{"claimName", src.claim}, {"readOnly", true}}}});
      mounts.push_back({{"name", "model"}, {"mountPath", "/model"}, {"readOnly", true}});
      break;
    case SourceKind::File:
      volumes.push_back({{"name", "model"}, {"hostPath", {{"path", src.path}, {"type", "Directory"}}}});
      mounts.push_back({{"name", "model"}, {"mountPath", "/model"}, {"readOnly", true}});
      break;
    case SourceKind::HuggingFace:
      volumes.push_back({{"name", "hf-cache"}, {"emptyDir", {{"sizeLimit", d.hf_cache_size}}}});
      mounts.push_back({{"name", "hf-cache"}, {"mountPath", "/data"}});
      env.push_back({{"name", "HF_HOME"}, {"value", "/data"}});
      break;
    case SourceKind::Https: break;
  }
}

static json container_resources(const json& spec) {
  json res = spec.value("resources", json::object());
  json out = json::object();
  for (const char* k : {"requests", "limits"})
    if (res.contains(k) && !res[k].empty()) out[k] = res[k];
  json engine = spec.value("engine", json::object());
  if (engine.value("device", "cuda") == "cuda") {
    std::string gpus = std::to_string(engine.value("numShard", 1));
    out["limits"]["nvidia.com/gpu"] = gpus;  // extended resources: requests must equal limits
    out["requests"]["nvidia.com/gpu"] = gpus;
  }
  return out;
}

json desired_deployment(const json& ldep, const std::vector<json>& adapters, const Defaults& d) {
  const json& spec = ldep.at("spec");
  std::string name = ldep.at("metadata").at("name");
  json engine = spec.value("engine", json::object());
  Source src = parse_source(spec.at("model").at("source").get<std::string>(), false);
  int port = engine_port(ldep);

  json volumes = json::array({{{"name", "shm"}, {"emptyDir", {{"medium", "Memory"}, {"sizeLimit", d.shm_size}}}},
                              {{"name", "adapter-config"}, {"configMap", {{"name", adapter_configmap_name(name)}}}}});
  json mounts = json::array({{{"name", "shm"}, {"mountPath", "/dev/shm"}},
                             {{"name", "adapter-config"}, {"mountPath", "/etc/lorax/adapters"}, {"readOnly", true}}});
  json env = json::array();
  add_model_volume(src, d, volumes, mounts, env);
  std::set<std::string> claims;  // pvc:// adapters: one read-only volume per claim
  for (const auto& a : adapters) {
    try {
      Source as = parse_source(a.at("spec").at("source").get<std::string>(), true);
      if (as.kind == SourceKind::Pvc) claims.insert(as.claim);
    } catch (const std::exception&) {  // invalid adapters are reported on the Adapter, not here
    }
  }
  int i = 0;
  for (const auto& c : claims) {
    std::string vol = "adapter-pvc-" + std::to_string(i++);
    volumes.push_back({{"name", vol}, {"persistentVolumeClaim", {{"claimName", c}, {"readOnly", true}}}});
    mounts.push_back({{"name", vol}, {"mountPath", std::string(kAdapterMountRoot) + "/" + c}, {"readOnly", true}});
  }

  json args = json::array({"serve"});
  for (auto& a : engine_args(ldep, d)) args.push_back(a);
  json container = {{"name", "engine"},
                    {"image", engine.value("image", d.engine_image)},
                    {"imagePullPolicy", engine.value("imagePullPolicy", d.image_pull_policy)},
                    {"command", {"lorax-engine"}},
                    {"args", args},
                    {"ports", {{{"name", "http"}, {"containerPort", port}, {"protocol", "TCP"}}}},
                    {"volumeMounts", mounts},
                    // /health is 200 only once the model is loaded: the startup probe gives loading
                    // time (up to 20 min) before liveness may restart the pod.
                    {"startupProbe", http_probe(10, 120)},
                    {"readinessProbe", http_probe(5, 3)},
                    {"livenessProbe", http_probe(10, 6)}};
  if (!env.empty()) container["env"] = env;
  json res = container_resources(spec);
  if (!res.empty()) container["resources"] = res;

  json pod_spec = {{"containers", {container}}, {"volumes", volumes}};
  if (spec.contains("nodeSelector") && !spec["nodeSelector"].empty()) pod_spec["nodeSelector"] = spec["nodeSelector"];
  if (spec.contains("tolerations") && !spec["tolerations"].empty()) pod_spec["tolerations"] = spec["tolerations"];

  json obj = owned_object("apps/v1", "Deployment", name, ldep);
  obj["spec"] = {
      {"replicas", spec.value("replicas", 1)},
      {"selector", {{"matchLabels", selector_labels(name)}}},
      {"template",
       {{"metadata",
         {{"labels", object_labels(name)},
          {"annotations",
           {{"prometheus.io/scrape", "true"}, {"prometheus.io/port", std::to_string(port)},
            {"prometheus.io/path", "/metrics"}}}}},
        {"spec", pod_spec}}}};
  return obj;
}

}  // namespace lorax::op
