// A Backend that computes nothing: every op is a no-op and the greedy token of a
// logits row is a fixed function of that row's input token and position, so a
// request's output does not depend on what shares its batch (as with a real
// model). It records every forward batch, so scheduler tests can look at the
// batches the scheduler built. The tiny model spec goes with it.
#pragma once
#include <cstring>
#include <memory>
#include <vector>

#include "model/model.h"
#include "runtime/backend.h"

namespace lorax::testing {

class FakeBackend final : public Backend {
 public:
  static constexpr int kVocab = 97;
  // Never kVocab - 1, the spec's EOS: requests run to max_new_tokens.
  static int32_t next_token(int32_t input, int32_t position) { return (input * 7 + position + 3) % (kVocab - 1); }

  std::string name() const override { return "fake"; }
  DType compute_dtype() const override { return DType::F32; }
  Tensor empty(const std::vector<int64_t>& shape) override {
    Tensor t;
    t.shape = shape;
    t.owner = std::shared_ptr<void>(new float[std::max<int64_t>(t.numel(), 1)](), [](void* p) { delete[] static_cast<float*>(p); });
    t.data = t.owner.get();
    return t;
  }
  Tensor upload(const float* host, const std::vector<int64_t>& shape) override {
    Tensor t = empty(shape);
    std::memcpy(t.data, host, t.bytes());
    return t;
  }
  std::vector<float> download(const Tensor& t) override { return std::vector<float>(t.numel(), 0.0f); }
  void fill_random(Tensor&, uint64_t, float) override {}
  void fill(Tensor&, float) override {}
  void begin_forward(const ForwardBatch& batch) override { batches.push_back(batch); }
  void embed(const Tensor&, const Tensor*, float, Tensor&) override {}
  void linear(const Tensor&, const Tensor&, const Tensor*, Tensor&) override {}
  void lora(const Tensor&, const std::vector<AdapterSegment>&, const LoraCall&, Tensor&) override {}
  void add(Tensor&, const Tensor&) override {}
  void norm(const Tensor&, NormKind, const Tensor&, const Tensor*, float, bool, Tensor&) override {}
  void rope(Tensor&, int, int, int, int, const std::vector<float>&) override {}
  void attention(Tensor&, KvLayer&, int, const AttentionParams&, Tensor&) override {}
  void activation(Tensor&, Activation) override {}
  void gated_activation(const Tensor&, Activation, Tensor&) override {}
  void gather_rows(const Tensor&, Tensor&) override {}
  void softcap(Tensor&, float) override {}
  void argmax(const Tensor&, std::vector<int32_t>& ids, std::vector<float>& logprobs,
              const std::vector<AllowedTokens>&) override {
    const ForwardBatch& b = batches.back();
    ids.clear();
    logprobs.clear();
    for (int32_t row : b.lm_head_indices) {
      ids.push_back(next_token(b.input_ids[row], b.position_ids[row]));
      logprobs.push_back(-1.0f);
    }
  }

  std::vector<ForwardBatch> batches;
};

// A two-layer Llama-shaped spec small enough that its dummy weights cost nothing.
inline ModelSpec tiny_spec() {
  return parse_model_spec(R"({"model_type": "llama", "vocab_size": 97, "hidden_size": 8, "num_hidden_layers": 2,
    "num_attention_heads": 2, "num_key_value_heads": 1, "intermediate_size": 16, "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-6, "eos_token_id": 96})",
                          "tiny");
}

}  // namespace lorax::testing
