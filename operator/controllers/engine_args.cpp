#include <stdexcept>

#include "controllers/adapter_plan.h"
#include "controllers/desired.h"
#include "controllers/model_source.h"

namespace lorax::op {

int engine_port(const json& ldep) { return ldep.at("spec").value("engine", json::object()).value("port", 8080); }

// Container path where the model source appears (see deployment_builder.cpp).
static std::string model_arg(const Source& s) {
  switch (s.kind) {
    case SourceKind::HuggingFace: return "hf://" + s.repo;  // found in --model-cache-dir (fetch-model put it there)
    case SourceKind::Pvc: return "/model" + (s.path.empty() ? "" : "/" + s.path);
    case SourceKind::File: return "/model";
    case SourceKind::Https: break;
  }
  throw std::invalid_argument("unsupported model source");
}

std::vector<std::string> model_fetch_args(const json& ldep) {
  const json& model = ldep.at("spec").at("model");
  Source src = parse_source(model.at("source").get<std::string>(), false);
  std::vector<std::string> a = {"--model", model_arg(src)};
  if (src.kind != SourceKind::HuggingFace) return a;
  a.insert(a.end(), {"--model-cache-dir", kModelCacheDir});
  if (model.contains("revision")) a.insert(a.end(), {"--model-revision", model["revision"].get<std::string>()});
  if (model.contains("hubEndpoint")) a.insert(a.end(), {"--hub-endpoint", model["hubEndpoint"].get<std::string>()});
  return a;
}

std::string spec_problem(const json& ldep) {
  json engine = ldep.at("spec").value("engine", json::object());
  if (engine.value("numShard", 1) != 1)
    return "engine.numShard " + std::to_string(engine.value("numShard", 1)) +
           ": tensor parallelism is not implemented in lorax-engine yet (it would refuse to start)";
  const std::string dtype = engine.value("dtype", "auto");
  if (engine.value("device", "cuda") == "cpu" && dtype != "auto" && dtype != "float32")
    return "engine.device cpu computes in float32, not " + dtype;
  return "";
}

std::vector<std::string> engine_args(const json& ldep, const Defaults& d) {
  const json& spec = ldep.at("spec");
  json engine = spec.value("engine", json::object());
  json adapters = spec.value("adapters", json::object());
  std::vector<std::string> a = model_fetch_args(ldep);
  a.insert(a.end(), {"--host", "0.0.0.0", "--port", std::to_string(engine_port(ldep))});
  a.insert(a.end(), {"--device", engine.value("device", "cuda")});
  auto flag_str = [&](const char* key, const char* flag) {
    if (engine.contains(key)) a.insert(a.end(), {flag, engine[key].get<std::string>()});
  };
  auto flag_int = [&](const json& obj, const char* key, const char* flag, int fallback) {
    int v = obj.contains(key) ? obj[key].get<int>() : fallback;
    if (v > 0) a.insert(a.end(), {flag, std::to_string(v)});
  };
  flag_str("dtype", "--dtype");
  flag_str("loadFormat", "--load-format");
  flag_str("modelId", "--model-id");
  flag_str("kvCacheDtype", "--kv-cache-dtype");
  if (engine.contains("prefixCaching")) a.insert(a.end(), {"--prefix-caching", engine["prefixCaching"].get<bool>() ? "on" : "off"});
  flag_int(engine, "maxConnections", "--max-connections", 0);
  flag_int(engine, "maxSchemaBytes", "--max-schema-bytes", 0);
  flag_int(engine, "maxBestOf", "--max-best-of", 0);
  flag_int(engine, "maxInputLength", "--max-input-length", 0);
  flag_int(engine, "maxTotalTokens", "--max-total-tokens", 0);
  flag_int(engine, "maxBatchTotalTokens", "--max-batch-total-tokens", 0);
  flag_int(engine, "maxBatchPrefillTokens", "--max-batch-prefill-tokens", 0);
  flag_int(adapters, "maxActive", "--max-active-adapters", d.max_active_adapters);
  flag_int(adapters, "maxLoaded", "--max-loaded-adapters", d.max_loaded_adapters);
  // Zero is meaningful for these two (no host tier / no byte limit), so they are passed whenever set.
  if (adapters.contains("maxHost"))
    a.insert(a.end(), {"--max-host-adapters", std::to_string(adapters["maxHost"].get<long long>())});
  if (adapters.contains("maxHostBytes"))
    a.insert(a.end(), {"--max-host-adapter-bytes", std::to_string(adapters["maxHostBytes"].get<long long>())});
  if (adapters.contains("cycleTimeSeconds")) {
    json v = adapters["cycleTimeSeconds"];
    a.insert(a.end(), {"--adapter-cycle-time-s", v.is_number_integer() ? std::to_string(v.get<long>()) : v.dump()});
  }
  a.insert(a.end(), {"--shutdown-timeout-s", std::to_string(engine.value("shutdownTimeoutSeconds", 30))});
  a.insert(a.end(), {"--num-shard", std::to_string(engine.value("numShard", 1))});
  a.insert(a.end(), {"--adapter-dir", kAdapterMountRoot});
  a.insert(a.end(), {"--adapter-registry", std::string(kAdapterRegistryDir) + "/adapters.json"});
  a.insert(a.end(), {"--adapter-cache-dir", "/cache/adapters"});
  for (const auto& h : adapters.value("hostPaths", json::array())) a.insert(a.end(), {"--adapter-root", h});
  for (const auto& u : adapters.value("urlAllow", json::array())) a.insert(a.end(), {"--adapter-url-allow", u});
  // An hf:// model's --hub-endpoint (among the model arguments) serves hf:// adapters too.
  for (const auto& extra : engine.value("args", json::array())) a.push_back(extra.get<std::string>());
  return a;
}

}  // namespace lorax::op
