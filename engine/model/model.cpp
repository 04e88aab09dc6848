#include "model/model.h"

#include <cmath>
#include <string>

#include "adapters/adapter_batch.h"

namespace lorax {

Model::Model(ModelSpec spec, ModelWeights weights, Backend& backend)
    : spec_(std::move(spec)), weights_(std::move(weights)), backend_(backend) {
  if (spec_.positions == PositionKind::Rope) base_inv_freq_ = rope_inv_freq(0);
}

std::unique_ptr<Model> Model::load(const std::string& model_dir, Backend& backend, LoadFormat format,
                                   uint64_t dummy_seed) {
  ModelSpec spec = load_model_spec(model_dir);
  ModelWeights weights =
      format == LoadFormat::Dummy ? dummy_weights(spec, backend, dummy_seed) : load_weights(model_dir, spec, backend);
  auto model = std::make_unique<Model>(std::move(spec), std::move(weights), backend);
  if (model->spec_.embedding) model->embedding_head_ = load_embedding_head(model_dir, model->spec_.hidden_size);
  return model;
}

// Inverse frequencies of rotate-half RoPE with the transformers scaling variants.
std::vector<float> Model::rope_inv_freq(int max_s) const {
  const RopeSpec& r = spec_.rope;
  const int dim = r.rotary_dim;
  double theta = r.theta;
  if (r.scaling == RopeScaling::Dynamic && max_s > spec_.max_position_embeddings) {
    // Dynamic NTK: grow the base with the longest sequence in the batch.
    const double ratio = r.factor * max_s / spec_.max_position_embeddings - (r.factor - 1.0);
    theta *= std::pow(ratio, static_cast<double>(dim) / (dim - 2));
  }
  std::vector<float> inv(dim / 2);
  for (int i = 0; i < dim / 2; ++i) {
    double f = 1.0 / std::pow(theta, (2.0 * i) / dim);
    if (r.scaling == RopeScaling::Linear) {
      f /= r.factor;
    } else if (r.scaling == RopeScaling::Llama3) {
      const double old_ctx = r.original_max_position;
      const double low_wavelen = old_ctx / r.low_freq_factor, high_wavelen = old_ctx / r.high_freq_factor;
      const double wavelen = 2.0 * M_PI / f;
      if (wavelen > low_wavelen) {
        f /= r.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (old_ctx / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
        f = (1.0 - smooth) * f / r.factor + smooth * f;
      }
    }
    inv[i] = static_cast<float>(f);
  }
  return inv;
}

void Model::validate(const ForwardBatch& batch, const KvCache& kv) const {
  const int T = batch.num_tokens();
  if (batch.position_ids.size() != static_cast<size_t>(T) || batch.slots.size() != static_cast<size_t>(T))
    throw std::invalid_argument("forward batch: position_ids and slots must have one entry per token");
  if (batch.cu_seqlens.empty() || batch.cu_seqlens.back() != T)
    throw std::invalid_argument("forward batch: cu_seqlens must end at the token count");
  for (int32_t id : batch.input_ids)
    if (id < 0 || id >= spec_.vocab_size)
      throw std::out_of_range("token id " + std::to_string(id) + " outside the vocabulary of " +
                              std::to_string(spec_.vocab_size));
  const int64_t slots = kv.allocator().num_blocks() * static_cast<int64_t>(kv.block_size());
  for (int32_t s : batch.slots)
    if (s < 0 || s >= slots) throw std::out_of_range("KV slot outside the cache");
  if (spec_.positions == PositionKind::Learned)
    for (int32_t p : batch.position_ids)
      if (p >= spec_.max_position_embeddings)
        throw std::out_of_range("position " + std::to_string(p) + " beyond the model's " +
                                std::to_string(spec_.max_position_embeddings) + " learned positions");
  for (int32_t r : batch.lm_head_indices)
    if (r < 0 || r >= T) throw std::out_of_range("lm_head index outside the batch");
}

Tensor Model::run(const ForwardBatch& batch, KvCache& kv, const AdapterBatch* adapters, bool hidden_only) {
  validate(batch, kv);
  Backend& be = backend_;
  const ModelSpec& s = spec_;
  const int64_t T = batch.num_tokens(), H = s.hidden_size;
  const int64_t mlp_width = s.gated_mlp ? 2 * s.intermediate_size : s.intermediate_size;
  be.begin_forward(batch);
  Tensor h = be.empty({T, H}), x = be.empty({T, H}), o = be.empty({T, H}), mlp_out = be.empty({T, H});
  Tensor qkv = be.empty({T, s.qkv_size()}), attn = be.empty({T, s.q_size()});
  Tensor up = be.empty({T, mlp_width}), act = be.empty({T, s.intermediate_size});
  const int64_t n = static_cast<int64_t>(batch.lm_head_indices.size());
  Tensor selected = be.empty({n, H}), logits = hidden_only ? Tensor{} : be.empty({n, s.vocab_size});
  const Tensor* pos_table = weights_.pos_embed.defined() ? &weights_.pos_embed : nullptr;

  const std::vector<float> inv_freq =
      s.rope.scaling == RopeScaling::Dynamic ? rope_inv_freq(batch.max_s) : base_inv_freq_;
  const float eps = static_cast<float>(s.norm_eps);
  auto norm = [&](const Tensor& in, const Tensor& w, const Tensor& b, Tensor& out) {
    be.norm(in, s.norm, w, b.defined() ? &b : nullptr, eps, s.norm_one_plus_weight, out);
  };
  auto project = [&](const Tensor& in, const Tensor& w, const Tensor& b, Tensor& out, int layer, Projection proj) {
    if (adapters) {
      be.linear_lora(in, w, b.defined() ? &b : nullptr, adapters->token_segments, adapters->calls(layer, proj), out);
    } else {
      be.linear(in, w, b.defined() ? &b : nullptr, out);
    }
  };
  auto mlp = [&](const Tensor& in, const LayerWeights& w, int layer, Tensor& out) {
    project(in, w.up_w, w.up_b, up, layer, Projection::Up);
    if (s.gated_mlp) {
      be.gated_activation(up, s.activation, act);
    } else {
      be.activation(up, s.activation);
    }
    project(s.gated_mlp ? act : up, w.down_w, w.down_b, out, layer, Projection::Down);
  };

  // All buffers exist before the body so a backend can record and replay it.
  auto body = [&] {
    be.embed(weights_.embed, pos_table, static_cast<float>(s.embedding_multiplier), h);
    // The residual add that is still owed to h, fused into the next norm.
    const Tensor* pending = nullptr;
    auto norm_h = [&](const Tensor& w, const Tensor& b, Tensor& out) {
      if (pending) {
        be.add_norm(h, *pending, s.norm, w, b.defined() ? &b : nullptr, eps, s.norm_one_plus_weight, out);
        pending = nullptr;
      } else {
        norm(h, w, b, out);
      }
    };
    for (int l = 0; l < s.num_layers; ++l) {
      const LayerWeights& w = weights_.layers[l];
      norm_h(w.attn_norm_w, w.attn_norm_b, x);
      project(x, w.qkv_w, w.qkv_b, qkv, l, Projection::Qkv);
      AttentionParams p;
      if (s.positions == PositionKind::Rope) {
        p.rope_inv_freq = &inv_freq;
        p.rotary_dim = s.rope.rotary_dim;
      }
      p.num_heads = s.num_heads;
      p.num_kv_heads = s.num_kv_heads;
      p.head_dim = s.head_dim;
      p.scale = static_cast<float>(s.layer_attn_scale(l));
      p.logit_softcap = static_cast<float>(s.attn_logit_softcap);
      p.sliding_window = s.layer_window(l);
      be.attention(qkv, kv.layer(l), kv.block_size(), p, attn);
      project(attn, w.o_w, w.o_b, o, l, Projection::O);
      if (s.sandwich_norms) norm(o, w.post_attn_norm_w, Tensor{}, o);
      if (s.parallel_residual) {
        // x + attn(ln1(x)) + mlp(ln2(x)): both norms read the layer input.
        norm(h, w.mlp_norm_w, w.mlp_norm_b, x);
        mlp(x, w, l, mlp_out);
        be.add(h, o);
      } else {
        pending = &o;
        norm_h(w.mlp_norm_w, w.mlp_norm_b, x);
        mlp(x, w, l, mlp_out);
        if (s.sandwich_norms) norm(mlp_out, w.post_mlp_norm_w, Tensor{}, mlp_out);
      }
      pending = &mlp_out;
    }
    norm_h(weights_.final_norm_w, weights_.final_norm_b, x);
    be.gather_rows(x, selected);
    if (hidden_only) return;
    be.linear(selected, weights_.lm_head, nullptr, logits);
    if (adapters) adapters->apply_lm_head(be, selected, logits);
    if (s.final_logit_softcap > 0) be.softcap(logits, static_cast<float>(s.final_logit_softcap));
  };
  if (adapters) be.prepare_lora(adapters->groups(T));
  // Pure decode steps repeat with the same shapes: those may be replayed as graphs.
  // The LoRA work is data the backend laid out in prepare_lora (a backend that
  // records graphs adds what the recording depends on to the key), so one
  // recording serves any mix of adapters.
  const bool decode_only = batch.num_tokens() == batch.num_seqs() &&
                           static_cast<int64_t>(batch.lm_head_indices.size()) == T && s.rope.scaling != RopeScaling::Dynamic;
  if (decode_only) {
    // A recording holds the KV cache's addresses: another cache needs its own.
    std::string key = "decode:" + std::to_string(T) + ":kv" + std::to_string(kv.uid());
    if (adapters) key.append(":lora");
    if (hidden_only) key.append(":hidden");
    be.run_graph(key, body);
  } else {
    body();
  }
  return hidden_only ? selected : logits;
}

std::vector<float> Model::forward_hidden(const ForwardBatch& batch, KvCache& kv, const AdapterBatch* adapters) {
  return backend_.download(run(batch, kv, adapters, true));
}

std::vector<float> Model::forward(const ForwardBatch& batch, KvCache& kv, const AdapterBatch* adapters) {
  return backend_.download(run(batch, kv, adapters));
}

void Model::forward_greedy(const ForwardBatch& batch, KvCache& kv, const AdapterBatch* adapters,
                           std::vector<int32_t>& ids, std::vector<float>& logprobs,
                           const std::function<std::vector<AllowedTokens>()>& allowed) {
  Tensor logits = run(batch, kv, adapters);
  backend_.argmax(logits, ids, logprobs, allowed ? allowed() : std::vector<AllowedTokens>{});
}

std::vector<TokenChoice> Model::forward_choose(const ForwardBatch& batch, KvCache& kv, const AdapterBatch* adapters,
                                               const std::function<std::vector<RowChoice>()>& make_choices,
                                               const HostChoose& host_choose) {
  Tensor logits = run(batch, kv, adapters);
  const std::vector<RowChoice> choices = make_choices();
  std::vector<TokenChoice> out;
  if (backend_.choose_tokens(logits, choices, out)) return out;
  const std::vector<float> host = backend_.download(logits);
  const int64_t vocab = logits.cols();
  for (size_t r = 0; r < choices.size(); ++r)
    out.push_back(host_choose(std::span<const float>(host.data() + r * vocab, vocab), choices[r]));
  return out;
}

}  // namespace lorax
