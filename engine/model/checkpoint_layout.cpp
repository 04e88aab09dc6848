#include "model/checkpoint_layout.h"

#include <cctype>
#include <map>

namespace lorax {
namespace {

using Shape = std::vector<int64_t>;

struct Builder {
  const ModelSpec& s;
  std::vector<CanonicalWeight> out;

  void add(std::string name, std::vector<std::string> parts, std::vector<Shape> shapes,
           PartLayout layout = PartLayout::Linear, bool optional = false) {
    out.push_back({std::move(name), std::move(parts), std::move(shapes), layout, optional});
  }
  // A norm's weight and, for LayerNorm, its bias.
  void norm(const std::string& canonical, const std::string& prefix) {
    const int64_t h = s.hidden_size;
    add(canonical + ".weight", {prefix + ".weight"}, {{h}});
    if (s.norm == NormKind::LayerNorm) add(canonical + ".bias", {prefix + ".bias"}, {{h}});
  }
  void linear(const std::string& canonical, const std::vector<std::string>& prefixes, const std::vector<Shape>& shapes,
              bool bias, PartLayout layout = PartLayout::Linear) {
    std::vector<std::string> w, b;
    std::vector<Shape> bshapes;
    for (size_t i = 0; i < prefixes.size(); ++i) {
      w.push_back(prefixes[i] + ".weight");
      b.push_back(prefixes[i] + ".bias");
      bshapes.push_back({shapes[i][0]});
    }
    add(canonical + ".weight", w, shapes, layout);
    if (bias) add(canonical + ".bias", b, bshapes, layout == PartLayout::Conv1D ? PartLayout::Linear : layout);
  }
};

// Llama, Qwen2 and Gemma 2 share tensor names; Gemma 2 adds two norms and
// names its pre-MLP norm differently.
void llama_family(Builder& b) {
  const ModelSpec& s = b.s;
  const int64_t h = s.hidden_size, q = s.q_size(), kv = s.kv_size(), inter = s.intermediate_size;
  b.add("embed", {"model.embed_tokens.weight"}, {{s.vocab_size, h}});
  for (int i = 0; i < s.num_layers; ++i) {
    std::string p = "model.layers." + std::to_string(i) + ".";
    std::string c = "layers." + std::to_string(i) + ".";
    b.norm(c + "attn_norm", p + "input_layernorm");
    b.linear(c + "qkv", {p + "self_attn.q_proj", p + "self_attn.k_proj", p + "self_attn.v_proj"},
             {{q, h}, {kv, h}, {kv, h}}, s.qkv_bias);
    b.linear(c + "o", {p + "self_attn.o_proj"}, {{h, q}}, s.o_bias);
    if (s.sandwich_norms) {
      b.norm(c + "post_attn_norm", p + "post_attention_layernorm");
      b.norm(c + "mlp_norm", p + "pre_feedforward_layernorm");
      b.norm(c + "post_mlp_norm", p + "post_feedforward_layernorm");
    } else {
      b.norm(c + "mlp_norm", p + "post_attention_layernorm");
    }
    b.linear(c + "up", {p + "mlp.gate_proj", p + "mlp.up_proj"}, {{inter, h}, {inter, h}}, s.mlp_bias);
    b.linear(c + "down", {p + "mlp.down_proj"}, {{h, inter}}, s.mlp_bias);
  }
  b.norm("final_norm", "model.norm");
  b.add("lm_head", {"lm_head.weight"}, {{s.vocab_size, h}}, PartLayout::Linear, s.tied_embeddings || s.embedding);
}

void gpt_neox(Builder& b) {
  const ModelSpec& s = b.s;
  const int64_t h = s.hidden_size, inter = s.intermediate_size;
  b.add("embed", {"gpt_neox.embed_in.weight"}, {{s.vocab_size, h}});
  for (int i = 0; i < s.num_layers; ++i) {
    std::string p = "gpt_neox.layers." + std::to_string(i) + ".";
    std::string c = "layers." + std::to_string(i) + ".";
    b.norm(c + "attn_norm", p + "input_layernorm");
    b.linear(c + "qkv", {p + "attention.query_key_value"}, {{3 * h, h}}, s.qkv_bias, PartLayout::NeoxQkv);
    b.linear(c + "o", {p + "attention.dense"}, {{h, h}}, s.o_bias);
    b.norm(c + "mlp_norm", p + "post_attention_layernorm");
    b.linear(c + "up", {p + "mlp.dense_h_to_4h"}, {{inter, h}}, true);
    b.linear(c + "down", {p + "mlp.dense_4h_to_h"}, {{h, inter}}, true);
  }
  b.norm("final_norm", "gpt_neox.final_layer_norm");
  b.add("lm_head", {"embed_out.weight"}, {{s.vocab_size, h}}, PartLayout::Linear, s.tied_embeddings || s.embedding);
}

void gpt2(Builder& b) {
  const ModelSpec& s = b.s;
  const int64_t h = s.hidden_size, inter = s.intermediate_size;
  b.add("embed", {"transformer.wte.weight"}, {{s.vocab_size, h}});
  b.add("pos_embed", {"transformer.wpe.weight"}, {{s.max_position_embeddings, h}});
  for (int i = 0; i < s.num_layers; ++i) {
    std::string p = "transformer.h." + std::to_string(i) + ".";
    std::string c = "layers." + std::to_string(i) + ".";
    b.norm(c + "attn_norm", p + "ln_1");
    b.linear(c + "qkv", {p + "attn.c_attn"}, {{3 * h, h}}, true, PartLayout::Conv1D);
    b.linear(c + "o", {p + "attn.c_proj"}, {{h, h}}, true, PartLayout::Conv1D);
    b.norm(c + "mlp_norm", p + "ln_2");
    b.linear(c + "up", {p + "mlp.c_fc"}, {{inter, h}}, true, PartLayout::Conv1D);
    b.linear(c + "down", {p + "mlp.c_proj"}, {{h, inter}}, true, PartLayout::Conv1D);
  }
  b.norm("final_norm", "transformer.ln_f");
  b.add("lm_head", {"lm_head.weight"}, {{s.vocab_size, h}}, PartLayout::Linear, true);
}

}  // namespace

std::vector<CanonicalWeight> checkpoint_layout(const ModelSpec& spec) {
  Builder b{spec, {}};
  if (spec.model_type == "gpt2") {
    gpt2(b);
  } else if (spec.model_type == "gpt_neox") {
    gpt_neox(b);
  } else if (spec.model_type == "llama" || spec.model_type == "qwen2" || spec.model_type == "gemma2") {
    llama_family(b);
  } else {
    throw ModelError("no checkpoint layout for model_type '" + spec.model_type + "'");
  }
  return std::move(b.out);
}

bool is_ignored_buffer(const std::string& name) {
  auto ends_with = [&](const std::string& suffix) {
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends_with(".attn.bias") || ends_with(".attn.masked_bias") || ends_with(".attention.bias") ||
         ends_with(".attention.masked_bias") || ends_with("rotary_emb.inv_freq");
}

std::optional<LoraTarget> lora_target(const ModelSpec& s, const std::string& module) {
  const int64_t h = s.hidden_size, q = s.q_size(), kv = s.kv_size(), inter = s.intermediate_size;
  if (module == "lm_head" || module == "embed_out") return LoraTarget{-1, LoraProjection::LmHead, 0, h, s.vocab_size};
  // "<prefix>.<layer>.<suffix>" with the architecture's layer prefix.
  const std::string prefix = s.model_type == "gpt2"       ? "transformer.h."
                             : s.model_type == "gpt_neox" ? "gpt_neox.layers."
                                                          : "model.layers.";
  std::string rest = module;
  if (rest.rfind(prefix, 0) != 0 && s.model_type == "gpt2" && rest.rfind("h.", 0) == 0) rest = "transformer." + rest;
  // An adapter of the bare decoder (an embedding model's AutoModel: no "model." in its module names).
  if (rest.rfind(prefix, 0) != 0 && prefix == "model.layers." && rest.rfind("layers.", 0) == 0) rest = "model." + rest;
  if (rest.rfind(prefix, 0) != 0) return std::nullopt;
  rest = rest.substr(prefix.size());
  const size_t dot = rest.find('.');
  if (dot == std::string::npos || dot == 0) return std::nullopt;
  int layer = 0;
  for (size_t i = 0; i < dot; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(rest[i]))) return std::nullopt;
    layer = layer * 10 + (rest[i] - '0');
  }
  if (layer >= s.num_layers) return std::nullopt;
  const std::string suffix = rest.substr(dot + 1);
  using P = LoraProjection;
  struct Entry {
    P proj;
    int64_t offset, in, out;
    bool neox;
  };
  std::map<std::string, Entry> table;
  if (s.model_type == "gpt2") {
    table = {{"attn.c_attn", {P::Qkv, 0, h, 3 * h, false}},
             {"attn.c_proj", {P::O, 0, h, h, false}},
             {"mlp.c_fc", {P::Up, 0, h, inter, false}},
             {"mlp.c_proj", {P::Down, 0, inter, h, false}}};
  } else if (s.model_type == "gpt_neox") {
    table = {{"attention.query_key_value", {P::Qkv, 0, h, 3 * h, true}},
             {"attention.dense", {P::O, 0, h, h, false}},
             {"mlp.dense_h_to_4h", {P::Up, 0, h, inter, false}},
             {"mlp.dense_4h_to_h", {P::Down, 0, inter, h, false}}};
  } else if (s.model_type == "llama" || s.model_type == "qwen2" || s.model_type == "gemma2") {
    table = {{"self_attn.q_proj", {P::Qkv, 0, h, q, false}},
             {"self_attn.k_proj", {P::Qkv, q, h, kv, false}},
             {"self_attn.v_proj", {P::Qkv, q + kv, h, kv, false}},
             {"self_attn.o_proj", {P::O, 0, q, h, false}},
             {"mlp.gate_proj", {P::Up, 0, h, inter, false}},
             {"mlp.up_proj", {P::Up, inter, h, inter, false}},
             {"mlp.down_proj", {P::Down, 0, inter, h, false}}};
  }
  auto it = table.find(suffix);
  if (it == table.end()) return std::nullopt;
  const Entry& e = it->second;
  return LoraTarget{layer, e.proj, e.offset, e.in, e.out, e.neox};
}

int64_t neox_qkv_row(int64_t row, int num_heads, int head_dim) {
  const int64_t head = row / (3 * head_dim);
  const int64_t which = (row / head_dim) % 3;  // 0 = q, 1 = k, 2 = v
  const int64_t d = row % head_dim;
  return which * num_heads * head_dim + head * head_dim + d;
}

}  // namespace lorax
