// config.json -> ModelSpec. Both transformers 4.x keys (rope_theta, rope_scaling,
// rotary_pct, rotary_emb_base, use_sliding_window) and 5.x keys (rope_parameters,
// layer_types) are accepted; each architecture below only fills the description.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/json_integer.h"
#include "model/model_spec.h"

namespace lorax {
namespace {

using json = nlohmann::json;

struct ConfigReader {
  const json& j;
  std::string source;

  bool has(const char* key) const { return j.contains(key) && !j[key].is_null(); }
  template <typename T>
  T get(const char* key, T fallback) const {
    if (!has(key)) return fallback;
    try {
      return j[key].get<T>();
    } catch (const json::exception&) {
      throw ModelError(source + ": field '" + key + "' has the wrong type");
    }
  }
  int require_int(const char* key) const {
    if (!has(key)) throw ModelError(source + ": missing required field '" + key + "'");
    // Bounded before the narrowing get<int>, which would wrap 2^32+8 to 8.
    if (!json_integer_in(j[key], 1, 1ll << 30))
      throw ModelError(source + ": field '" + key + "' must be a positive integer (at most 2^30)");
    return j[key].get<int>();
  }
};

std::vector<int32_t> token_id_list(const json& value) {
  std::vector<int32_t> ids;
  if (value.is_number_integer()) ids.push_back(value.get<int32_t>());
  if (value.is_array())
    for (auto& v : value)
      if (v.is_number_integer()) ids.push_back(v.get<int32_t>());
  return ids;
}

// rope_parameters (5.x) or rope_theta/rope_scaling (4.x).
void read_rope(const ConfigReader& c, ModelSpec& spec, double default_theta, double partial_factor) {
  json params = json::object();
  if (c.has("rope_parameters") && c.j["rope_parameters"].is_object()) params = c.j["rope_parameters"];
  if (c.has("rope_scaling") && c.j["rope_scaling"].is_object())
    for (auto& [k, v] : c.j["rope_scaling"].items()) params[k] = v;
  RopeSpec& rope = spec.rope;
  rope.theta = params.value("rope_theta", c.get<double>("rope_theta", default_theta));
  if (params.contains("partial_rotary_factor") && params["partial_rotary_factor"].is_number())
    partial_factor = params["partial_rotary_factor"].get<double>();
  rope.rotary_dim = static_cast<int>(spec.head_dim * partial_factor);
  if (rope.rotary_dim % 2 != 0 || rope.rotary_dim <= 0)
    throw ModelError(c.source + ": rotary dimension " + std::to_string(rope.rotary_dim) + " must be even and positive");
  const std::string type = params.value("rope_type", params.value("type", std::string("default")));
  static const std::map<std::string, RopeScaling> kinds = {{"default", RopeScaling::Default},
                                                           {"linear", RopeScaling::Linear},
                                                           {"dynamic", RopeScaling::Dynamic},
                                                           {"llama3", RopeScaling::Llama3}};
  auto kind = kinds.find(type);
  if (kind == kinds.end()) throw ModelError(c.source + ": unsupported rope scaling type '" + type + "'");
  rope.scaling = kind->second;
  auto num = [&](const char* key, double fallback) {
    return params.contains(key) && params[key].is_number() ? params[key].get<double>() : fallback;
  };
  rope.factor = num("factor", 1.0);
  rope.low_freq_factor = num("low_freq_factor", 1.0);
  rope.high_freq_factor = num("high_freq_factor", 4.0);
  rope.original_max_position = static_cast<int>(num("original_max_position_embeddings", spec.max_position_embeddings));
}

// Which layers use the sliding window: 5.x `layer_types`, else the architecture's rule.
void read_layer_types(const ConfigReader& c, ModelSpec& spec, const std::function<bool(int)>& default_rule) {
  spec.layer_sliding.assign(spec.num_layers, false);
  if (c.has("layer_types")) {
    const json& types = c.j["layer_types"];
    if (!types.is_array() || static_cast<int>(types.size()) != spec.num_layers)
      throw ModelError(c.source + ": layer_types must list one type per layer");
    for (int i = 0; i < spec.num_layers; ++i) spec.layer_sliding[i] = types[i] == "sliding_attention";
  } else {
    for (int i = 0; i < spec.num_layers; ++i) spec.layer_sliding[i] = default_rule(i);
  }
  if (spec.sliding_window <= 0)
    for (int i = 0; i < spec.num_layers; ++i) spec.layer_sliding[i] = false;
}

void read_common_decoder(const ConfigReader& c, ModelSpec& spec) {
  spec.vocab_size = c.require_int("vocab_size");
  spec.hidden_size = c.require_int("hidden_size");
  spec.num_layers = c.require_int("num_hidden_layers");
  spec.num_heads = c.require_int("num_attention_heads");
  spec.num_kv_heads = c.get<int>("num_key_value_heads", spec.num_heads);
  spec.head_dim = c.get<int>("head_dim", spec.hidden_size / spec.num_heads);
  spec.intermediate_size = c.require_int("intermediate_size");
  spec.max_position_embeddings = c.get<int>("max_position_embeddings", 2048);
  spec.tied_embeddings = c.get<bool>("tie_word_embeddings", false);
}

// The Llama family (Llama, Qwen2, Gemma 2): RMSNorm decoders with gated MLPs.
void read_rms_decoder(const ConfigReader& c, ModelSpec& spec, const std::string& default_act) {
  read_common_decoder(c, spec);
  spec.norm = NormKind::RmsNorm;
  spec.norm_eps = c.get<double>("rms_norm_eps", 1e-6);
  const std::string act = c.get<std::string>("hidden_activation", c.get<std::string>("hidden_act", default_act));
  spec.activation = parse_activation(act, c.source);
}

void describe_llama(const ConfigReader& c, ModelSpec& spec) {
  read_rms_decoder(c, spec, "silu");
  spec.qkv_bias = spec.o_bias = c.get<bool>("attention_bias", false);
  spec.mlp_bias = c.get<bool>("mlp_bias", false);
  read_rope(c, spec, 10000.0, c.get<double>("partial_rotary_factor", 1.0));
  read_layer_types(c, spec, [](int) { return false; });
}

void describe_qwen2(const ConfigReader& c, ModelSpec& spec) {
  read_rms_decoder(c, spec, "silu");
  spec.qkv_bias = true;
  read_rope(c, spec, 10000.0, 1.0);
  bool use_window = c.get<bool>("use_sliding_window", false);
  spec.sliding_window = c.get<int>("sliding_window", 0);
  int max_window_layers = c.get<int>("max_window_layers", spec.num_layers);
  if (!c.has("layer_types") && !use_window) spec.sliding_window = 0;
  read_layer_types(c, spec, [&](int i) { return i >= max_window_layers; });
}

void describe_gemma2(const ConfigReader& c, ModelSpec& spec) {
  read_rms_decoder(c, spec, "gelu_pytorch_tanh");
  spec.tied_embeddings = c.get<bool>("tie_word_embeddings", true);
  spec.norm_one_plus_weight = true;
  spec.sandwich_norms = true;
  spec.qkv_bias = spec.o_bias = c.get<bool>("attention_bias", false);
  spec.embedding_multiplier = std::sqrt(static_cast<double>(spec.hidden_size));
  spec.attn_scale = 1.0 / std::sqrt(c.get<double>("query_pre_attn_scalar", spec.head_dim));
  spec.attn_logit_softcap = c.get<double>("attn_logit_softcapping", 0.0);
  spec.final_logit_softcap = c.get<double>("final_logit_softcapping", 0.0);
  spec.sliding_window = c.get<int>("sliding_window", 0);
  read_rope(c, spec, 10000.0, 1.0);
  // Gemma 2 without layer_types: even layers use the window.
  read_layer_types(c, spec, [](int i) { return i % 2 == 0; });
}

void describe_gpt_neox(const ConfigReader& c, ModelSpec& spec) {
  read_common_decoder(c, spec);
  spec.norm = NormKind::LayerNorm;
  spec.norm_eps = c.get<double>("layer_norm_eps", 1e-5);
  spec.activation = parse_activation(c.get<std::string>("hidden_act", "gelu"), c.source);
  spec.gated_mlp = false;
  spec.qkv_bias = spec.o_bias = c.get<bool>("attention_bias", true);
  spec.mlp_bias = true;
  spec.parallel_residual = c.get<bool>("use_parallel_residual", true);
  double base = c.get<double>("rotary_emb_base", 10000.0);
  read_rope(c, spec, base, c.get<double>("rotary_pct", c.get<double>("partial_rotary_factor", 1.0)));
  read_layer_types(c, spec, [](int) { return false; });
}

void describe_gpt2(const ConfigReader& c, ModelSpec& spec) {
  spec.vocab_size = c.require_int("vocab_size");
  spec.hidden_size = c.has("n_embd") ? c.require_int("n_embd") : c.require_int("hidden_size");
  spec.num_layers = c.has("n_layer") ? c.require_int("n_layer") : c.require_int("num_hidden_layers");
  spec.num_heads = c.has("n_head") ? c.require_int("n_head") : c.require_int("num_attention_heads");
  spec.num_kv_heads = spec.num_heads;
  spec.head_dim = spec.hidden_size / spec.num_heads;
  spec.intermediate_size = c.get<int>("n_inner", 4 * spec.hidden_size);
  spec.max_position_embeddings = c.get<int>("n_positions", 1024);
  spec.positions = PositionKind::Learned;
  spec.norm = NormKind::LayerNorm;
  spec.norm_eps = c.get<double>("layer_norm_epsilon", 1e-5);
  spec.activation = parse_activation(c.get<std::string>("activation_function", "gelu_new"), c.source);
  spec.gated_mlp = false;
  spec.qkv_bias = spec.o_bias = spec.mlp_bias = true;
  spec.tied_embeddings = true;
  if (!c.get<bool>("scale_attn_weights", true)) spec.attn_scale = 1.0;
  spec.scale_attn_by_inverse_layer_idx = c.get<bool>("scale_attn_by_inverse_layer_idx", false);
  spec.layer_sliding.assign(spec.num_layers, false);
}

const std::map<std::string, std::function<void(const ConfigReader&, ModelSpec&)>>& architectures() {
  static const std::map<std::string, std::function<void(const ConfigReader&, ModelSpec&)>> table = {
      {"llama", describe_llama},       {"qwen2", describe_qwen2}, {"gemma2", describe_gemma2},
      {"gpt_neox", describe_gpt_neox}, {"gpt2", describe_gpt2},
  };
  return table;
}

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ModelError("cannot read " + path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Activation parse_activation(const std::string& name, const std::string& source) {
  if (name == "gelu") return Activation::Gelu;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") return Activation::GeluTanh;
  if (name == "silu" || name == "swish") return Activation::Silu;
  if (name == "relu") return Activation::Relu;
  throw ModelError(source + ": unsupported activation '" + name + "'");
}

// Values no trained model has and that would make every logit NaN or infinite
// (rms_norm_eps -1, rope factor 0, rope_theta 0): refused at load, naming the field.
static void check_physical(const ModelSpec& spec, const std::string& source) {
  auto refuse = [&](const char* what) { throw ModelError(source + ": " + what); };
  auto finite = [](double v) { return std::isfinite(v); };
  if (!finite(spec.norm_eps) || spec.norm_eps <= 0 || spec.norm_eps >= 1)
    refuse("the normalization epsilon (rms_norm_eps / layer_norm_eps) must be > 0 and < 1");
  if (!finite(spec.attn_scale) || spec.attn_scale <= 0) refuse("the attention scale must be finite and positive");
  if (!finite(spec.attn_logit_softcap) || spec.attn_logit_softcap < 0 || !finite(spec.final_logit_softcap) ||
      spec.final_logit_softcap < 0)
    refuse("logit soft-capping values must be finite and >= 0");
  if (spec.positions == PositionKind::Learned) return;
  const RopeSpec& r = spec.rope;
  if (!finite(r.theta) || r.theta <= 1) refuse("rope_theta must be finite and > 1");
  if (!finite(r.factor) || r.factor <= 0 || r.factor > 1e6) refuse("the rope scaling `factor` must be > 0");
  if (r.scaling == RopeScaling::Llama3 && (!finite(r.low_freq_factor) || !finite(r.high_freq_factor) ||
                                     r.low_freq_factor <= 0 || r.high_freq_factor <= r.low_freq_factor ||
                                     r.original_max_position <= 0))
    refuse("llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0");
}

ModelSpec parse_model_spec(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    throw ModelError(source + ": invalid JSON (" + std::string(e.what()) + ")");
  }
  if (!j.is_object()) throw ModelError(source + ": expected a JSON object");
  ConfigReader c{j, source};
  std::string type = c.get<std::string>("model_type", "");
  auto it = architectures().find(type);
  if (it == architectures().end())
    throw ModelError(source + ": unknown model_type '" + type + "' (supported: gpt2, gpt_neox, gemma2, qwen2, llama)");
  ModelSpec spec;
  spec.model_type = type;
  it->second(c, spec);
  if (spec.attn_scale == 0) spec.attn_scale = 1.0 / std::sqrt(static_cast<double>(spec.head_dim));
  if (spec.num_kv_heads <= 0 || spec.num_heads % spec.num_kv_heads != 0)
    throw ModelError(source + ": num_attention_heads must be a multiple of num_key_value_heads");
  if (spec.positions == PositionKind::Learned) spec.rope.rotary_dim = 0;
  check_physical(spec, source);
  if (c.has("eos_token_id")) spec.eos_token_ids = token_id_list(j["eos_token_id"]);
  if (c.has("bos_token_id") && j["bos_token_id"].is_number_integer()) spec.bos_token_id = j["bos_token_id"].get<int32_t>();
  return spec;
}

ModelSpec load_model_spec(const std::string& model_dir) {
  namespace fs = std::filesystem;
  fs::path dir(model_dir);
  if (!fs::is_directory(dir)) throw ModelError("model directory " + model_dir + " does not exist");
  fs::path config = dir / "config.json";
  if (!fs::exists(config)) throw ModelError(config.string() + ": file not found");
  ModelSpec spec = parse_model_spec(read_text_file(config), config.string());
  spec.embedding = fs::exists(dir / "modules.json");
  fs::path gen = dir / "generation_config.json";
  if (fs::exists(gen)) {
    json g = json::parse(read_text_file(gen), nullptr, false);
    if (g.is_object() && g.contains("eos_token_id")) {
      for (int32_t id : token_id_list(g["eos_token_id"]))
        if (std::find(spec.eos_token_ids.begin(), spec.eos_token_ids.end(), id) == spec.eos_token_ids.end())
          spec.eos_token_ids.push_back(id);
    }
  }
  return spec;
}

}  // namespace lorax
