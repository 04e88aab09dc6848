#include "controllers/adapter_plan.h"
#include "controllers/desired.h"
#include "controllers/labels.h"
#include "controllers/model_source.h"

namespace lorax::op {

namespace {

json http_probe(int period, int failures) {
  return {{"httpGet", {{"path", "/health"}, {"port", "http"}}},
          {"periodSeconds", period},
          {"failureThreshold", failures},
          {"timeoutSeconds", 5}};
}

json volume_mount(const std::string& name, const std::string& path, bool read_only) {
  json m = {{"name", name}, {"mountPath", path}};
  if (read_only) m["readOnly"] = true;
  return m;
}

// Pod Security "restricted": the engine image runs as 65532 (Dockerfile); fsGroup
// makes the emptyDirs and claims writable/readable for it.
json pod_security_context() {
  return {{"runAsNonRoot", true}, {"runAsUser", 65532}, {"runAsGroup", 65532}, {"fsGroup", 65532},
          {"seccompProfile", {{"type", "RuntimeDefault"}}}};
}

json container_security_context() {
  return {{"allowPrivilegeEscalation", false}, {"readOnlyRootFilesystem", true},
          {"capabilities", {{"drop", {"ALL"}}}}};
}

json container_resources(const json& spec) {
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

// HF_TOKEN from model.tokenSecretRef (hf:// models; also used for hf:// adapters), then engine.env.
json container_env(const json& spec) {
  json env = json::array();
  const json model = spec.at("model");
  if (model.contains("tokenSecretRef")) {
    const json& ref = model["tokenSecretRef"];
    env.push_back({{"name", "HF_TOKEN"},
                   {"valueFrom", {{"secretKeyRef", {{"name", ref.at("name")}, {"key", ref.value("key", "token")}}}}}});
  }
  for (const auto& e : spec.value("engine", json::object()).value("env", json::array())) env.push_back(e);
  return env;
}

}  // namespace

json desired_deployment(const json& ldep, const Defaults& d) {
  const json& spec = ldep.at("spec");
  std::string name = ldep.at("metadata").at("name");
  json engine = spec.value("engine", json::object());
  Source src = parse_source(spec.at("model").at("source").get<std::string>(), false);
  int port = engine_port(ldep);
  const std::string image = engine.value("image", d.engine_image);
  const std::string pull = engine.value("imagePullPolicy", d.image_pull_policy);

  // Every pod has the same volumes whatever Adapters exist: the registry ConfigMap and
  // the token Secret are updated in place by kubelet, so a new Adapter restarts nothing.
  json volumes = json::array({
      {{"name", "shm"}, {"emptyDir", {{"medium", "Memory"}, {"sizeLimit", d.shm_size}}}},
      {{"name", "tmp"}, {"emptyDir", json::object()}},
      {{"name", "adapter-cache"}, {"emptyDir", json::object()}},
      {{"name", "adapter-registry"}, {"configMap", {{"name", adapter_configmap_name(name)}}}},
      {{"name", "adapter-tokens"}, {"secret", {{"secretName", adapter_token_secret_name(name)}, {"optional", true}}}}});
  json mounts = json::array({volume_mount("shm", "/dev/shm", false), volume_mount("tmp", "/tmp", false),
                             volume_mount("adapter-cache", "/cache/adapters", false),
                             volume_mount("adapter-registry", kAdapterRegistryDir, true),
                             volume_mount("adapter-tokens", kAdapterTokenDir, true)});
  switch (src.kind) {
    case SourceKind::Pvc:
      volumes.push_back({{"name", "model"}, {"persistentVolumeClaim", {{"claimName", src.claim}, {"readOnly", true}}}});
      mounts.push_back(volume_mount("model", "/model", true));
      break;
    case SourceKind::File:
      volumes.push_back({{"name", "model"}, {"hostPath", {{"path", src.path}, {"type", "Directory"}}}});
      mounts.push_back(volume_mount("model", "/model", true));
      break;
    case SourceKind::HuggingFace:
      volumes.push_back({{"name", "model-cache"}, {"emptyDir", {{"sizeLimit", d.hf_cache_size}}}});
      mounts.push_back(volume_mount("model-cache", kModelCacheDir, false));
      break;
    case SourceKind::Https: break;
  }
  const json adapter_mounts = spec.value("adapters", json::object());
  int i = 0;
  for (const auto& claim : adapter_mounts.value("claims", json::array())) {
    std::string vol = "adapter-claim-" + std::to_string(i++);
    volumes.push_back({{"name", vol}, {"persistentVolumeClaim", {{"claimName", claim}, {"readOnly", true}}}});
    mounts.push_back(volume_mount(vol, std::string(kAdapterMountRoot) + "/" + claim.get<std::string>(), true));
  }
  i = 0;
  for (const auto& path : adapter_mounts.value("hostPaths", json::array())) {
    std::string vol = "adapter-host-" + std::to_string(i++);
    volumes.push_back({{"name", vol}, {"hostPath", {{"path", path}, {"type", "Directory"}}}});
    mounts.push_back(volume_mount(vol, path, true));
  }

  json args = json::array({"serve"});
  for (auto& a : engine_args(ldep, d)) args.push_back(a);
  json env = container_env(spec);
  json container = {{"name", "engine"},
                    {"image", image},
                    {"imagePullPolicy", pull},
                    {"command", {"lorax-engine"}},
                    {"args", args},
                    {"ports", {{{"name", "http"}, {"containerPort", port}, {"protocol", "TCP"}}}},
                    {"volumeMounts", mounts},
                    {"securityContext", container_security_context()},
                    // /health is 200 only once the model is loaded: the startup probe gives loading
                    // time (up to 20 min) before liveness may restart the pod. An hf:// download
                    // happens before, in the fetch-model init container, outside this budget.
                    {"startupProbe", http_probe(10, 120)},
                    {"readinessProbe", http_probe(5, 3)},
                    {"livenessProbe", http_probe(10, 6)}};
  if (!env.empty()) container["env"] = env;
  json res = container_resources(spec);
  if (!res.empty()) container["resources"] = res;

  // SIGTERM drains for engine.shutdownTimeoutSeconds; the grace period leaves 15 s more
  // so the kubelet's SIGKILL never cuts a drain short.
  const int drain_s = engine.value("shutdownTimeoutSeconds", 30);
  json pod_spec = {{"containers", {container}}, {"volumes", volumes},
                   {"securityContext", pod_security_context()},
                   {"terminationGracePeriodSeconds", drain_s + 15}};
  if (src.kind == SourceKind::HuggingFace) {
    // The same image fetches the model into the pod's cache first: its own logs
    // (kubectl logs -c fetch-model), kubelet retries with back-off, and a resumable
    // partial download survives a retry (same emptyDir).
    json fetch = {{"name", "fetch-model"},
                  {"image", image},
                  {"imagePullPolicy", pull},
                  {"command", {"lorax-engine"}},
                  {"args", model_fetch_args(ldep)},
                  {"volumeMounts", json::array({volume_mount("model-cache", kModelCacheDir, false),
                                                volume_mount("tmp", "/tmp", false)})},
                  {"securityContext", container_security_context()}};
    fetch["args"].insert(fetch["args"].begin(), "download");
    if (!env.empty()) fetch["env"] = env;
    pod_spec["initContainers"] = json::array({fetch});
  }
  for (const char* key : {"nodeSelector", "tolerations", "affinity", "imagePullSecrets"})
    if (spec.contains(key) && !spec[key].empty()) pod_spec[key] = spec[key];
  if (spec.contains("priorityClassName")) pod_spec["priorityClassName"] = spec["priorityClassName"];

  json annotations = spec.value("podAnnotations", json::object());
  annotations["prometheus.io/scrape"] = "true";
  annotations["prometheus.io/port"] = std::to_string(port);
  annotations["prometheus.io/path"] = "/metrics";
  json obj = owned_object("apps/v1", "Deployment", name, ldep);
  obj["spec"] = {{"replicas", spec.value("replicas", 1)},
                 {"selector", {{"matchLabels", selector_labels(name)}}},
                 {"template", {{"metadata", {{"labels", object_labels(name)}, {"annotations", annotations}}},
                               {"spec", pod_spec}}}};
  return obj;
}

}  // namespace lorax::op
