// ModelSpec: the per-architecture description that drives the one shared decoder
// (DESIGN.md §3). Per-architecture code only fills this in from config.json and
// maps checkpoint tensor names to canonical ones (architectures.cpp).
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/ops.h"

namespace lorax {

struct ModelError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class PositionKind { Learned, Rope };

// transformers' rope_type values the decoder implements.
enum class RopeScaling { Default, Linear, Dynamic, Llama3 };

struct RopeSpec {
  double theta = 10000.0;
  int rotary_dim = 0;  // leading dims of each head that rotate (partial rotary)
  RopeScaling scaling = RopeScaling::Default;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int original_max_position = 0;
};

struct ModelSpec {
  std::string model_type;
  int vocab_size = 0;
  int hidden_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int intermediate_size = 0;
  int max_position_embeddings = 0;

  PositionKind positions = PositionKind::Rope;
  RopeSpec rope;
  NormKind norm = NormKind::RmsNorm;
  double norm_eps = 1e-6;
  bool norm_one_plus_weight = false;  // Gemma: x * (1 + w)
  bool sandwich_norms = false;        // Gemma 2: post-attention and post-MLP norms too
  bool parallel_residual = false;     // GPT-NeoX
  bool gated_mlp = true;
  Activation activation = Activation::Silu;
  bool qkv_bias = false;
  bool o_bias = false;
  bool mlp_bias = false;
  bool tied_embeddings = false;
  double embedding_multiplier = 1.0;  // Gemma: sqrt(hidden)

  double attn_scale = 0;               // softmax scale before per-layer adjustments
  bool scale_attn_by_inverse_layer_idx = false;  // GPT-2
  double attn_logit_softcap = 0;       // 0 = off
  double final_logit_softcap = 0;
  int sliding_window = 0;              // 0 = none
  std::vector<bool> layer_sliding;     // per layer: does the window apply

  std::vector<int32_t> eos_token_ids;
  std::optional<int32_t> bos_token_id;
  // A sentence-embedding model (modules.json beside config.json): the decoder
  // without its LM head, followed by model/embedding_head.h.
  bool embedding = false;

  int q_size() const { return num_heads * head_dim; }
  int kv_size() const { return num_kv_heads * head_dim; }
  int qkv_size() const { return q_size() + 2 * kv_size(); }
  // Softmax scale of one layer (GPT-2 divides by layer index + 1).
  double layer_attn_scale(int layer) const {
    return scale_attn_by_inverse_layer_idx ? attn_scale / (layer + 1) : attn_scale;
  }
  int layer_window(int layer) const {
    return sliding_window > 0 && layer_sliding.at(layer) ? sliding_window : 0;
  }
};

// Reads `config.json` (transformers 4.x or 5.x style) and generation_config.json if present.
ModelSpec load_model_spec(const std::string& model_dir);
ModelSpec parse_model_spec(const std::string& config_json_text, const std::string& source_name);

Activation parse_activation(const std::string& name, const std::string& source);

}  // namespace lorax
