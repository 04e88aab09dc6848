#include "model/checkpoint_layout.h"

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
  b.add("lm_head", {"lm_head.weight"}, {{s.vocab_size, h}}, PartLayout::Linear, s.tied_embeddings);
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
  b.add("lm_head", {"embed_out.weight"}, {{s.vocab_size, h}}, PartLayout::Linear, s.tied_embeddings);
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
  } else {
    llama_family(b);
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

int64_t neox_qkv_row(int64_t row, int num_heads, int head_dim) {
  const int64_t head = row / (3 * head_dim);
  const int64_t which = (row / head_dim) % 3;  // 0 = q, 1 = k, 2 = v
  const int64_t d = row % head_dim;
  return which * num_heads * head_dim + head * head_dim + d;
}

}  // namespace lorax
