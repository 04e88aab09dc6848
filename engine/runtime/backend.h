// Backend: the one seam between model math and hardware (DESIGN.md §3). The
// decoder calls only these ops; the CPU backend (fp32, OpenBLAS, threads) is the
// reference and the CUDA backend implements the same contract on the GPU.
#pragma once
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/forward_batch.h"
#include "runtime/ops.h"
#include "runtime/tensor.h"
#include "runtime/token_choice.h"

namespace lorax {

struct AttentionParams {
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  float scale = 1.0f;
  float logit_softcap = 0.0f;  // 0 = off
  int sliding_window = 0;      // 0 = off; else attend to the last `window` positions
  // When set, rotate-half RoPE is applied to q and k first (fused where a backend can).
  const std::vector<float>* rope_inv_freq = nullptr;
  int rotary_dim = 0;
};

// K and V of one layer: [num_slots, num_kv_heads, head_dim] each, slot =
// block * block_size + offset.
// In an FP8 (e4m3) cache a slot holds round(x / scale) and reads back as code * scale.
struct KvLayer {
  Tensor k;
  Tensor v;
  float k_scale = 1.0f, v_scale = 1.0f;
};

// LoRA weights of one adapter for one projection: A [r, in], B [out, r].
struct LoraPair {
  Tensor a;
  Tensor b;
  float scale = 0.0f;
  int rank = 0;
};

// One segmented LoRA product into a fused projection's output columns
// [col_offset, col_offset + B.rows): pairs[i] belongs to the batch's adapter i.
// `id` numbers the forward's calls once they are planned (prepare_lora).
struct LoraCall {
  std::vector<const LoraPair*> pairs;
  int64_t col_offset = 0;
  int id = -1;
};

// The LoRA calls one projection of a forward makes over one set of segments
// (token segments, or the lm_head rows' segments), launched together.
struct LoraGroup {
  const std::vector<AdapterSegment>* segments = nullptr;
  int64_t rows = 0;  // rows of the projection's input
  std::vector<const LoraCall*> calls;
};

// host_alloc found the reserved host memory used up (see reserve_host_memory).
struct HostMemoryFull : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual DType compute_dtype() const = 0;

  // Memory. `upload` converts host float32 to the backend's storage dtype.
  virtual Tensor empty(const std::vector<int64_t>& shape) = 0;
  // Storage of another dtype (the FP8 KV cache); throws where the backend cannot hold it.
  virtual Tensor empty_as(const std::vector<int64_t>& shape, DType dtype);
  // Whether attention() reads and writes a KvLayer of DType::F8E4M3.
  virtual bool supports_fp8_kv() const { return false; }
  virtual Tensor upload(const float* host, const std::vector<int64_t>& shape) = 0;
  virtual std::vector<float> download(const Tensor& t) = 0;
  // A tensor's bytes as stored (the FP8 KV cache's codes, for tests).
  virtual std::vector<uint8_t> download_bytes(const Tensor& t);

  // Adapter weights travel disk -> host staging -> device. `host_alloc` gives
  // host memory the backend copies from fastest (pinned on CUDA), `to_storage`
  // converts float32 into the storage dtype there, and `copy_to_device` starts a
  // copy of such memory into new device memory without waiting: kernels may read
  // `memory` once `ready()` says so. The CPU backend computes on host memory, so
  // its copy is the host memory itself, ready at once.
  struct DeviceCopy {
    std::shared_ptr<void> memory;
    std::function<bool()> ready;
  };
  virtual std::shared_ptr<void> host_alloc(size_t bytes);
  // Sets `bytes` of such host memory aside now (CUDA: pinning it, which stalls the
  // device while it runs, so a server does it before it serves); host_alloc then
  // takes from it, throwing HostMemoryFull when it is used up. Without it each
  // host_alloc is its own allocation.
  virtual void reserve_host_memory(size_t bytes);
  virtual void to_storage(const float* src, int64_t n, void* dst) const;
  virtual DeviceCopy copy_to_device(std::shared_ptr<void> host, size_t bytes);

  // Fills with N(0, stddev) (deterministic in `seed`), or with `value`; for
  // --load-format dummy, so random weights never pass through host memory.
  virtual void fill_random(Tensor& t, uint64_t seed, float stddev) = 0;
  virtual void fill(Tensor& t, float value) = 0;

  // Per-forward metadata (token ids, positions, block tables...).
  virtual void begin_forward(const ForwardBatch& batch) = 0;

  // out[t] = table[input_ids[t]] * multiplier (+ pos_table[position_ids[t]]).
  virtual void embed(const Tensor& table, const Tensor* pos_table, float multiplier, Tensor& out) = 0;
  // y = x W^T (+ bias); x [T, in], W [out, in], y [T, out].
  virtual void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) = 0;
  // Before a forward's body (outside any recorded graph): every LoRA call the
  // body will make, so a backend can lay out their work in device memory once.
  virtual void prepare_lora(const std::vector<LoraGroup>& groups) { (void)groups; }
  // For the rows of each segment: y[:, col_offset : col_offset + B.rows] += scale * (x A^T) B^T
  // (shrink, then expand). `call.pairs[i]` is adapter i's pair (null: no LoRA there).
  virtual void lora(const Tensor& x, const std::vector<AdapterSegment>& segments, const LoraCall& call, Tensor& y) = 0;
  // y = x W^T (+ bias) plus the LoRA calls over the segments. A backend may
  // overlap the LoRA shrink (which needs only x) with the base product.
  virtual void linear_lora(const Tensor& x, const Tensor& w, const Tensor* bias,
                           const std::vector<AdapterSegment>& segments, const std::vector<LoraCall>& calls,
                           Tensor& y) {
    linear(x, w, bias, y);
    for (const LoraCall& c : calls) lora(x, segments, c, y);
  }
  virtual void add(Tensor& y, const Tensor& x) = 0;  // y += x
  // y = norm(x) with weight (and bias for LayerNorm); `one_plus` uses (1 + w).
  virtual void norm(const Tensor& x, NormKind kind, const Tensor& w, const Tensor* b, float eps, bool one_plus,
                    Tensor& y) = 0;
  // h += delta, then y = norm(h): the residual add fused into the next norm.
  virtual void add_norm(Tensor& h, const Tensor& delta, NormKind kind, const Tensor& w, const Tensor* b, float eps,
                        bool one_plus, Tensor& y) {
    add(h, delta);
    norm(h, kind, w, b, eps, one_plus, y);
  }
  // Rotate-half RoPE on the first `rotary_dim` dims of every q and k head of qkv [T, (Hq+2Hkv)*D].
  virtual void rope(Tensor& qkv, int num_heads, int num_kv_heads, int head_dim, int rotary_dim,
                    const std::vector<float>& inv_freq) = 0;
  // Applies RoPE when p.rope_inv_freq is set, writes each token's k and v (from
  // qkv) into its slot, then attends every token's q over its sequence's context
  // through the block table.
  virtual void attention(Tensor& qkv, KvLayer& kv, int block_size, const AttentionParams& p, Tensor& out) = 0;
  // Plain MLP activation in place, or gated: out = act(in[:, :n]) * in[:, n:].
  virtual void activation(Tensor& x, Activation act) = 0;
  virtual void gated_activation(const Tensor& gate_up, Activation act, Tensor& out) = 0;
  // out[i] = x[rows[i]] for the batch's lm_head_indices.
  virtual void gather_rows(const Tensor& x, Tensor& out) = 0;
  virtual void softcap(Tensor& x, float cap) = 0;  // x = cap * tanh(x / cap)

  // Greedy choice per row of logits [n, vocab]: argmax and its log-probability,
  // so greedy decoding need not copy whole logit rows off the device. With
  // `allowed` (one per row, or empty), a row chooses among its allowed tokens and
  // its log-probability is over them.
  virtual void argmax(const Tensor& logits, std::vector<int32_t>& ids, std::vector<float>& logprobs,
                      const std::vector<AllowedTokens>& allowed = {}) = 0;
  // Every row's token (or prompt log-prob) as its RowChoice says, when the backend
  // does this itself; false (out untouched) leaves it to the host.
  virtual bool choose_tokens(const Tensor& logits, const std::vector<RowChoice>& rows, std::vector<TokenChoice>& out) {
    (void)logits, (void)rows, (void)out;
    return false;
  }

  // Runs `body` (ops only, no allocation) for the current forward. A backend may
  // record it once per `key` and replay it later (CUDA graphs); the default runs it.
  virtual void run_graph(const std::string& key, const std::function<void()>& body) {
    (void)key;
    body();
  }
  // Device memory for model weights and KV cache the backend can still give.
  virtual size_t free_memory() const { return 0; }
  // The largest LoRA rank its adapter kernels take; 0: any.
  virtual int max_lora_rank() const { return 0; }

 private:
  // host_alloc's reservation on host backends: only a budget (host memory costs nothing to set aside).
  struct HostBudget {
    std::mutex mu;
    size_t limit = 0, used = 0;  // limit 0: none
  };
  std::shared_ptr<HostBudget> host_budget_ = std::make_shared<HostBudget>();
};

std::unique_ptr<Backend> make_cpu_backend(int num_threads = 0);

}  // namespace lorax
