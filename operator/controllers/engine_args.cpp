#include <stdexcept>

#include "controllers/desired.h"
#include "controllers/model_source.h"

namespace lorax::op {

int engine_port(const json& ldep) { return ldep.at("spec").value("engine", json::object()).value("port", 8080); }

// Container path where the model source appears (see deployment_builder.cpp).
static std::string model_arg(const Source& s) {
  switch (s.kind) {
    case SourceKind::HuggingFace: return s.repo;
    case SourceKind::Pvc: return "/model" + (s.path.empty() ? "" : "/" + s.path);
    case SourceKind::File: return "/model";
    case SourceKind::Https: break;
  }
  throw std::invalid_argument("unsupported model source");
}

std::vector<std::string> engine_args(const json& ldep, const Defaults& d) {
  const json& spec = ldep.at("spec");
  json engine = spec.value("engine", json::object());
  json adapters = spec.value("adapters", json::object());
  Source src = parse_source(spec.at("model").at("source").get<std::string>(), false);
  std::vector<std::string> a = {"--model", model_arg(src), "--host", "0.0.0.0", "--port",
                                std::to_string(engine_port(ldep))};
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
  flag_int(engine, "maxInputLength", "--max-input-length", 0);
  flag_int(engine, "maxTotalTokens", "--max-total-tokens", 0);
  flag_int(engine, "maxBatchTotalTokens", "--max-batch-total-tokens", 0);
  flag_int(engine, "maxBatchPrefillTokens", "--max-batch-prefill-tokens", 0);
  flag_int(adapters, "maxActive", "--max-active-adapters", d.max_active_adapters);
  flag_int(adapters, "maxLoaded", "--max-loaded-adapters", d.max_loaded_adapters);
  if (adapters.contains("cycleTimeSeconds")) {
    json v = adapters["cycleTimeSeconds"];
    a.insert(a.end(), {"--adapter-cycle-time-s", v.is_number_integer() ? std::to_string(v.get<long>()) : v.dump()});
  }
  a.insert(a.end(), {"--num-shard", std::to_string(engine.value("numShard", 1))});
  a.insert(a.end(), {"--adapter-dir", kAdapterMountRoot});
  for (const auto& extra : engine.value("args", json::array())) a.push_back(extra.get<std::string>());
  return a;
}

}  // namespace lorax::op
