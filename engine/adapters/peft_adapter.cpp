#include "adapters/peft_adapter.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "model/checkpoint_layout.h"
#include "model/safetensors.h"

namespace lorax {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct PeftConfig {
  int r = 8;
  double alpha = 8;
  bool rslora = false;
  std::map<std::string, int> rank_pattern;
  std::map<std::string, double> alpha_pattern;
};

// The first pattern key matching `module` the way PEFT does: `(.*\.)?KEY$`.
template <typename T>
std::optional<T> match_pattern(const std::map<std::string, T>& patterns, const std::string& module) {
  for (auto& [key, value] : patterns) {
    try {
      if (std::regex_match(module, std::regex("(.*\\.)?" + key))) return value;
    } catch (const std::regex_error&) {
      if (module == key || (module.size() > key.size() && module.compare(module.size() - key.size() - 1, std::string::npos, "." + key) == 0))
        return value;
    }
  }
  return std::nullopt;
}

PeftConfig read_config(const fs::path& path, const std::string& id, std::vector<std::string>* warnings) {
  std::ifstream in(path);
  if (!in) throw AdapterError("adapter " + id + ": " + path.string() + " not found");
  json j;
  try {
    in >> j;
  } catch (const json::exception&) {
    throw AdapterError("adapter " + id + ": " + path.string() + " is not valid JSON");
  }
  if (!j.is_object()) throw AdapterError("adapter " + id + ": adapter_config.json must be an object");
  auto str = [&](const char* k, const std::string& d) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : d; };
  if (str("peft_type", "LORA") != "LORA")
    throw AdapterError("adapter " + id + ": peft_type " + str("peft_type", "") + " is not supported (only LORA)");
  if (j.value("use_dora", false)) throw AdapterError("adapter " + id + ": DoRA adapters (use_dora) are not supported");
  if (str("bias", "none") != "none")
    throw AdapterError("adapter " + id + ": trained biases (bias=" + str("bias", "") + ") are not supported");
  if (j.contains("modules_to_save") && !j["modules_to_save"].is_null() && !j["modules_to_save"].empty())
    throw AdapterError("adapter " + id + ": modules_to_save (fully trained modules) are not supported");
  PeftConfig c;
  try {
    c.r = j.value("r", 8);
    c.alpha = j.value("lora_alpha", static_cast<double>(c.r));
    c.rslora = j.value("use_rslora", false);
    if (j.contains("rank_pattern") && j["rank_pattern"].is_object())
      c.rank_pattern = j["rank_pattern"].get<std::map<std::string, int>>();
    if (j.contains("alpha_pattern") && j["alpha_pattern"].is_object())
      c.alpha_pattern = j["alpha_pattern"].get<std::map<std::string, double>>();
  } catch (const json::exception&) {
    throw AdapterError("adapter " + id + ": adapter_config.json has a field of the wrong type");
  }
  if (c.r <= 0) throw AdapterError("adapter " + id + ": r must be positive");
  static const std::set<std::string> known = {
      "r", "lora_alpha", "use_rslora", "rank_pattern", "alpha_pattern", "target_modules", "fan_in_fan_out",
      "peft_type", "task_type", "bias", "use_dora", "modules_to_save", "base_model_name_or_path", "revision",
      "inference_mode", "lora_dropout", "init_lora_weights", "layers_to_transform", "layers_pattern",
      "auto_mapping", "megatron_config", "megatron_core", "loftq_config", "layer_replication", "runtime_config",
      "exclude_modules", "eva_config", "corda_config", "lora_bias", "trainable_token_indices", "target_parameters",
      "qalora_group_size", "use_qalora", "alora_invocation_tokens", "arrow_config", "ensure_weight_tying"};
  for (auto& [k, _] : j.items())
    if (!known.count(k) && warnings) warnings->push_back("adapter " + id + ": ignoring unknown config key '" + k + "'");
  if (j.value("lora_bias", false)) throw AdapterError("adapter " + id + ": lora_bias is not supported");
  return c;
}

// "base_model.model.<module>.lora_A[.default].weight" -> (module, 'A'|'B').
std::optional<std::pair<std::string, char>> parse_key(std::string key) {
  const std::string prefix = "base_model.model.";
  if (key.rfind(prefix, 0) == 0) key = key.substr(prefix.size());
  for (char which : {'A', 'B'}) {
    const std::string tag = std::string(".lora_") + which + ".";
    size_t pos = key.find(tag);
    if (pos == std::string::npos) continue;
    std::string tail = key.substr(pos + tag.size());
    if (tail == "weight" || tail.rfind(".weight") == tail.size() - 7) return std::make_pair(key.substr(0, pos), which);
  }
  return std::nullopt;
}

}  // namespace

AdapterWeights load_peft_adapter(const std::string& dir, const std::string& id, const ModelSpec& spec,
                                 Backend& backend, std::vector<std::string>* warnings) {
  fs::path root(dir);
  if (!fs::is_directory(root)) throw AdapterError("adapter " + id + ": directory " + dir + " does not exist");
  PeftConfig cfg = read_config(root / "adapter_config.json", id, warnings);
  fs::path weights = root / "adapter_model.safetensors";
  if (!fs::exists(weights)) {
    if (fs::exists(root / "adapter_model.bin"))
      throw AdapterError("adapter " + id + ": adapter_model.bin is a pickled checkpoint and is refused for safety; "
                         "save the adapter with safe_serialization=True (adapter_model.safetensors)");
    throw AdapterError("adapter " + id + ": adapter_model.safetensors not found in " + dir);
  }
  Checkpoint ckpt = [&] {
    try {
      return Checkpoint::open_file(weights.string());
    } catch (const ModelError& e) {
      throw AdapterError("adapter " + id + ": " + e.what());
    }
  }();

  std::map<std::string, std::pair<std::string, std::string>> modules;  // module -> (A key, B key)
  for (const std::string& key : ckpt.names()) {
    if (key.find("lora_magnitude_vector") != std::string::npos)
      throw AdapterError("adapter " + id + ": DoRA weights ('" + key + "') are not supported");
    if (key.find("lora_embedding_") != std::string::npos)
      throw AdapterError("adapter " + id + ": LoRA on embeddings ('" + key + "') is not supported");
    auto parsed = parse_key(key);
    if (!parsed) {
      if (key.find(".lora_B.") != std::string::npos && key.size() > 5 && key.compare(key.size() - 5, 5, ".bias") == 0)
        throw AdapterError("adapter " + id + ": trained LoRA biases ('" + key + "') are not supported");
      if (warnings) warnings->push_back("adapter " + id + ": ignoring tensor '" + key + "'");
      continue;
    }
    (parsed->second == 'A' ? modules[parsed->first].first : modules[parsed->first].second) = key;
  }
  if (modules.empty()) throw AdapterError("adapter " + id + ": no LoRA weights found in " + weights.string());

  AdapterWeights out;
  out.id = id;
  out.layers.resize(spec.num_layers);
  for (auto& [module, keys] : modules) {
    if (keys.first.empty() || keys.second.empty())
      throw AdapterError("adapter " + id + ": module '" + module + "' lacks its lora_" + (keys.first.empty() ? "A" : "B") +
                         " weight");
    auto target = lora_target(spec, module);
    if (!target) {
      throw AdapterError("adapter " + id + ": module '" + module + "' does not exist in the " + spec.model_type +
                         " base model (wrong base model?)");
    }
    const TensorInfo& a = ckpt.info(keys.first);
    const TensorInfo& b = ckpt.info(keys.second);
    if (a.shape.size() != 2 || b.shape.size() != 2 || a.shape[1] != target->in_features ||
        b.shape[0] != target->out_features || a.shape[0] != b.shape[1])
      throw AdapterError("adapter " + id + ": '" + module + "' has lora_A " + shape_string(a.shape) + " and lora_B " +
                         shape_string(b.shape) + "; the base model needs [r, " + std::to_string(target->in_features) +
                         "] and [" + std::to_string(target->out_features) + ", r] (wrong base model?)");
    const int rank = static_cast<int>(a.shape[0]);
    const int configured = match_pattern(cfg.rank_pattern, module).value_or(cfg.r);
    if (configured != rank)
      throw AdapterError("adapter " + id + ": '" + module + "' has rank " + std::to_string(rank) +
                         " but adapter_config.json says " + std::to_string(configured));
    if (backend.max_lora_rank() > 0 && rank > backend.max_lora_rank())
      throw AdapterError("adapter " + id + ": '" + module + "' has rank " + std::to_string(rank) + "; the " +
                         backend.name() + " backend serves ranks up to " + std::to_string(backend.max_lora_rank()));
    const double alpha = match_pattern(cfg.alpha_pattern, module).value_or(cfg.alpha);
    LoraPair pair;
    pair.rank = rank;
    pair.scale = static_cast<float>(alpha / (cfg.rslora ? std::sqrt(static_cast<double>(rank)) : rank));
    std::vector<float> av, bv;
    try {
      av = ckpt.read_f32(keys.first);
      bv = ckpt.read_f32(keys.second);
    } catch (const ModelError& e) {
      throw AdapterError("adapter " + id + ": " + e.what());
    }
    if (target->neox_qkv) {
      std::vector<float> permuted(bv.size());
      for (int64_t r = 0; r < target->out_features; ++r) {
        int64_t dst = neox_qkv_row(r, spec.num_heads, spec.head_dim);
        std::copy(bv.begin() + r * rank, bv.begin() + (r + 1) * rank, permuted.begin() + dst * rank);
      }
      bv.swap(permuted);
    }
    pair.a = backend.upload(av.data(), a.shape);
    pair.b = backend.upload(bv.data(), b.shape);
    out.bytes += (av.size() + bv.size()) * sizeof(float);
    out.max_rank = std::max(out.max_rank, rank);
    if (target->projection == LoraProjection::LmHead) {
      out.lm_head = pair;
    } else {
      out.layers[target->layer][static_cast<int>(target->projection)].push_back({target->col_offset, pair});
    }
  }
  return out;
}

}  // namespace lorax
