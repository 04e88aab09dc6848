// A loaded model: its description, canonical weights on a backend, and the one
// decoder forward shared by all five architectures.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "adapters/adapter_batch.h"
#include "kv/kv_cache.h"
#include "model/embedding_head.h"
#include "model/model_spec.h"
#include "runtime/backend.h"

namespace lorax {


enum class LoadFormat { Auto, Dummy };

struct LayerWeights {
  Tensor attn_norm_w, attn_norm_b;
  Tensor qkv_w, qkv_b;
  Tensor o_w, o_b;
  Tensor post_attn_norm_w;  // Gemma 2 only
  Tensor mlp_norm_w, mlp_norm_b;
  Tensor up_w, up_b;  // [gate; up] for gated MLPs
  Tensor down_w, down_b;
  Tensor post_mlp_norm_w;  // Gemma 2 only
};

struct ModelWeights {
  Tensor embed, pos_embed, final_norm_w, final_norm_b, lm_head;
  std::vector<LayerWeights> layers;
  // Per layer (k, v) scales of an FP8 KV cache from the checkpoint's k_scale /
  // v_scale (or kv_scale) scalars, as vLLM's FP8 checkpoints ship them; empty
  // when it has none (the cache then uses 1.0, as vLLM does).
  std::vector<std::pair<float, float>> kv_scales;
};

class Model {
 public:
  Model(ModelSpec spec, ModelWeights weights, Backend& backend);
  static std::unique_ptr<Model> load(const std::string& model_dir, Backend& backend,
                                     LoadFormat format = LoadFormat::Auto, uint64_t dummy_seed = 0);

  const ModelSpec& spec() const { return spec_; }
  Backend& backend() { return backend_; }
  const ModelWeights& weights() const { return weights_; }

  // Runs one forward over the flattened batch and returns logits
  // [batch.lm_head_indices.size(), vocab] as float32 on the host.
  std::vector<float> forward(const ForwardBatch& batch, KvCache& kv, const AdapterBatch* adapters = nullptr);
  // The same forward, returning only the greedy token and its log-prob per row.
  // `allowed` (may be empty) runs once the forward is on its way and gives each
  // row's allowed tokens (constrained decoding), or none.
  void forward_greedy(const ForwardBatch& batch, KvCache& kv, const AdapterBatch* adapters, std::vector<int32_t>& ids,
                      std::vector<float>& logprobs, const std::function<std::vector<AllowedTokens>()>& allowed = {});

  // The same forward, each row's token chosen as `choices` say: on the backend
  // when it can (only ids and log-probs leave it), else by `host_choose` over the
  // downloaded logits.
  using HostChoose = std::function<TokenChoice(std::span<const float>, const RowChoice&)>;
  // `make_choices` runs once the forward is on its way (a GPU computes while the
  // host works out the rows' choices, e.g. constrained-decoding masks).
  std::vector<TokenChoice> forward_choose(const ForwardBatch& batch, KvCache& kv, const AdapterBatch* adapters,
                                          const std::function<std::vector<RowChoice>()>& make_choices,
                                          const HostChoose& host_choose);

  // The same forward up to the final norm: the last hidden states of the
  // lm_head_indices rows [rows, hidden] as float32 on the host (embeddings).
  std::vector<float> forward_hidden(const ForwardBatch& batch, KvCache& kv, const AdapterBatch* adapters = nullptr);
  // What follows the decoder of a sentence-embedding model; null for a generation model.
  const EmbeddingHead* embedding_head() const { return embedding_head_ ? &*embedding_head_ : nullptr; }

  // RoPE inverse frequencies for the batch (dynamic NTK scaling depends on max_s).
  std::vector<float> rope_inv_freq(int max_s) const;

 private:
  void validate(const ForwardBatch& batch, const KvCache& kv) const;
  // Runs the decoder and leaves logits [lm_head rows, vocab] on the backend.
  // (`hidden_only`: stops at the gathered final hidden states and returns those.)
  Tensor run(const ForwardBatch& batch, KvCache& kv, const AdapterBatch* adapters, bool hidden_only = false);
  ModelSpec spec_;
  std::optional<EmbeddingHead> embedding_head_;
  ModelWeights weights_;
  Backend& backend_;
  std::vector<float> base_inv_freq_;
};

// Loads the canonical weights (or random ones of the same shapes) into a backend.
ModelWeights load_weights(const std::string& model_dir, const ModelSpec& spec, Backend& backend);
ModelWeights dummy_weights(const ModelSpec& spec, Backend& backend, uint64_t seed);

}  // namespace lorax
