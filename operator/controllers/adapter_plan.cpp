#include "controllers/adapter_plan.h"

#include "controllers/model_source.h"

namespace lorax::op {

namespace {

bool under(const std::string& path, const std::string& dir) {
  std::string d = dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  return path == d || path.rfind(d == "/" ? d : d + "/", 0) == 0;
}

}  // namespace

AdapterPlan plan_adapter(const json& adapter, const json& ldep) {
  AdapterPlan p;
  const json spec = adapter.value("spec", json::object());
  p.id = spec.value("adapterId", adapter.at("metadata").value("name", ""));
  p.preload = spec.value("preload", false);
  p.generation = adapter.at("metadata").value("generation", 0L);
  p.sha256 = spec.value("sha256", "");
  if (spec.contains("tokenSecretRef")) p.token_key = adapter["metadata"].value("name", "");
  Source s;
  try {
    s = parse_source(spec.value("source", ""), true);
  } catch (const std::exception& e) {
    p.reason = "InvalidSource";
    p.problem = e.what();
    return p;
  }
  switch (s.kind) {
    case SourceKind::HuggingFace: p.source = "hub"; p.location = s.repo; break;
    case SourceKind::Https: p.source = "url"; p.location = s.repo; break;
    case SourceKind::File: p.source = "local"; p.location = s.path; break;
    case SourceKind::Pvc:
      p.source = "local";
      p.location = std::string(kAdapterMountRoot) + "/" + s.claim + (s.path.empty() ? "" : "/" + s.path);
      break;
  }
  const std::string ldep_name = spec.value("deploymentRef", json::object()).value("name", "");
  if (!ldep.is_object()) {
    p.reason = "DeploymentNotFound";
    p.problem = "LoraxDeployment " + adapter["metadata"].value("namespace", "") + "/" + ldep_name + " not found";
    return p;
  }
  const json& lspec = ldep.at("spec");
  const std::string model = lspec.at("model").value("source", "");
  if (spec.contains("baseModel") && spec["baseModel"] != model) {
    p.reason = "BaseModelMismatch";
    p.problem = "baseModel " + spec["baseModel"].get<std::string>() + " differs from the deployment's model " + model;
    return p;
  }
  const json mounts = lspec.value("adapters", json::object());
  if (s.kind == SourceKind::Pvc) {
    bool mounted = false;
    for (const auto& c : mounts.value("claims", json::array())) mounted = mounted || c == s.claim;
    if (!mounted) {
      p.reason = "NotMounted";
      p.problem = "claim " + s.claim + " is not in LoraxDeployment " + ldep_name +
                  " spec.adapters.claims (adding it there mounts it on every pod)";
    }
  }
  if (s.kind == SourceKind::File) {
    bool mounted = false;
    for (const auto& h : mounts.value("hostPaths", json::array())) mounted = mounted || under(s.path, h);
    if (!mounted) {
      p.reason = "NotMounted";
      p.problem = s.path + " is not under any of LoraxDeployment " + ldep_name + " spec.adapters.hostPaths";
    }
  }
  return p;
}

json registry_entry(const AdapterPlan& p) {
  json e = {{"id", p.id}, {"source", p.source}, {"location", p.location}, {"preload", p.preload},
            {"generation", p.generation}};
  if (!p.sha256.empty()) e["sha256"] = p.sha256;
  if (!p.token_key.empty()) e["token_file"] = std::string(kAdapterTokenDir) + "/" + p.token_key;
  return e;
}

}  // namespace lorax::op
