#include <cstdlib>
#include "runtime/cuda/cuda_backend.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <map>
#include <tuple>
#include <unordered_map>

#include "kernels/kernels.h"
#include "runtime/cuda/adapter_memory.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/lora_tables.h"

namespace lorax {
namespace {

using kernels::Dt;

Dt to_dt(DType d) { return d == DType::F32 ? Dt::F32 : d == DType::F16 ? Dt::F16 : Dt::BF16; }
cudaDataType_t to_cuda(DType d) { return d == DType::F32 ? CUDA_R_32F : d == DType::F16 ? CUDA_R_16F : CUDA_R_16BF; }

std::shared_ptr<void> device_alloc(size_t bytes) {
  void* p = nullptr;
  CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(bytes, 16)));
  return std::shared_ptr<void>(p, [](void* q) { CUDA_WARN(cudaFree(q)); });
}

// Bump allocator for one forward's activations. Addresses repeat for a repeated
// sequence of requests, which is what makes recorded graphs replayable. When a
// forward outgrows it, the overflow is served by separate allocations and the
// arena grows before the next forward.
class Arena {
 public:
  void reset() {
    overflow_.clear();
    if (wanted_ > capacity_) {
      base_ = device_alloc(wanted_);
      capacity_ = wanted_;
      ++generation_;
    }
    offset_ = 0;
  }
  void* take(size_t bytes, bool* overflowed) {
    bytes = (bytes + 255) & ~size_t{255};
    wanted_ = std::max(wanted_, offset_ + bytes);
    if (offset_ + bytes <= capacity_) {
      void* p = static_cast<char*>(base_.get()) + offset_;
      offset_ += bytes;
      return p;
    }
    offset_ += bytes;
    *overflowed = true;
    overflow_.push_back(device_alloc(bytes));
    return overflow_.back().get();
  }
  uint64_t generation() const { return generation_; }

 private:
  std::shared_ptr<void> base_;
  size_t capacity_ = 0, offset_ = 0, wanted_ = 0;
  uint64_t generation_ = 0;
  std::vector<std::shared_ptr<void>> overflow_;
};

// A device int32 array with a pinned host mirror, grown as needed.
struct MetaArray {
  std::shared_ptr<void> dev;
  int32_t* host = nullptr;
  size_t capacity = 0;
  ~MetaArray() {
    if (host) CUDA_WARN(cudaFreeHost(host));
  }
  // Returns true when the device address changed.
  bool ensure(size_t n) {
    if (n <= capacity) return false;
    size_t cap = std::max<size_t>(n, capacity * 2);
    if (host) CUDA_WARN(cudaFreeHost(host));
    CUDA_CHECK(cudaMallocHost(&host, cap * sizeof(int32_t)));
    dev = device_alloc(cap * sizeof(int32_t));
    capacity = cap;
    return true;
  }
  int32_t* d() const { return static_cast<int32_t*>(dev.get()); }
};

class CudaBackend final : public Backend {
 public:
  CudaBackend(DType dtype, int device) : dtype_(dtype), dt_(to_dt(dtype)) {
    kernels::set_programmatic_launch(std::getenv("LORAX_NO_PDL") == nullptr);  // LORAX_NO_PDL: A/B benchmarks
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count <= device)
      throw std::runtime_error("no CUDA device available (--device cuda)");
    CUDA_CHECK(cudaSetDevice(device));
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUDA_CHECK(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&fork_, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&join_, cudaEventDisableTiming));
    CUDA_CHECK(cublasLtCreate(&lt_));
    workspace_bytes_ = 64ull << 20;
    workspace_ = device_alloc(workspace_bytes_);
    adapter_memory_ = std::make_unique<cuda::AdapterMemory>(stream_);
  }
  ~CudaBackend() override {
    for (auto& [k, g] : graphs_) cudaGraphExecDestroy(g.exec);
    for (auto& [k, p] : plans_) {
      cublasLtMatmulDescDestroy(p.desc);
      cublasLtMatrixLayoutDestroy(p.a);
      cublasLtMatrixLayoutDestroy(p.b);
      cublasLtMatrixLayoutDestroy(p.c);
    }
    cublasLtDestroy(lt_);
    adapter_memory_.reset();
    cudaEventDestroy(fork_);
    cudaEventDestroy(join_);
    cudaStreamDestroy(side_);
    cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "cuda"; }
  DType compute_dtype() const override { return dtype_; }

  size_t free_memory() const override {
    size_t free = 0, total = 0;
    CUDA_CHECK(cudaMemGetInfo(&free, &total));
    return free;
  }

  int max_lora_rank() const override { return kernels::kMaxLoraRank; }

  Tensor empty(const std::vector<int64_t>& shape) override {
    Tensor t;
    t.shape = shape;
    t.dtype = dtype_;
    if (in_forward_) {
      t.data = arena_.take(t.bytes(), &arena_overflowed_);
    } else {
      t.owner = device_alloc(t.bytes());
      t.data = t.owner.get();
    }
    return t;
  }

  // FP8 KV: rope_kv_write quantizes, every attention kernel reads the codes.
  bool supports_fp8_kv() const override { return true; }
  Tensor empty_as(const std::vector<int64_t>& shape, DType dtype) override {
    if (dtype != DType::F8E4M3) return Backend::empty_as(shape, dtype);
    Tensor t;
    t.shape = shape;
    t.dtype = dtype;
    t.owner = device_alloc(t.bytes());
    t.data = t.owner.get();
    CUDA_CHECK(cudaMemset(t.data, 0, t.bytes()));
    return t;
  }
  std::vector<uint8_t> download_bytes(const Tensor& t) override {
    std::vector<uint8_t> out(t.bytes());
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    CUDA_CHECK(cudaMemcpy(out.data(), t.data, out.size(), cudaMemcpyDeviceToHost));
    return out;
  }

  Tensor upload(const float* host, const std::vector<int64_t>& shape) override {
    Tensor t;
    t.shape = shape;
    t.dtype = dtype_;
    t.owner = device_alloc(t.bytes());
    t.data = t.owner.get();
    const int64_t n = t.numel();
    if (dtype_ == DType::F32) {
      CUDA_CHECK(cudaMemcpy(t.data, host, n * 4, cudaMemcpyHostToDevice));
    } else {
      std::vector<uint16_t> staged(n);
      to_storage(host, n, staged.data());
      CUDA_CHECK(cudaMemcpy(t.data, staged.data(), n * 2, cudaMemcpyHostToDevice));
    }
    return t;
  }

  void to_storage(const float* src, int64_t n, void* dst) const override {
    if (dtype_ == DType::F32) {
      std::memcpy(dst, src, n * 4);
    } else if (dtype_ == DType::BF16) {
      auto* out = static_cast<__nv_bfloat16*>(dst);
      for (int64_t i = 0; i < n; ++i) out[i] = __float2bfloat16_rn(src[i]);
    } else {
      auto* out = static_cast<__half*>(dst);
      for (int64_t i = 0; i < n; ++i) out[i] = __float2half_rn(src[i]);
    }
  }
  std::shared_ptr<void> host_alloc(size_t bytes) override { return adapter_memory_->host_alloc(bytes); }
  void reserve_host_memory(size_t bytes) override { adapter_memory_->reserve(bytes); }
  DeviceCopy copy_to_device(std::shared_ptr<void> host, size_t bytes) override {
    return adapter_memory_->copy_to_device(std::move(host), bytes);
  }

  void fill_random(Tensor& t, uint64_t seed, float stddev) override {
    kernels::fill_random(dt_, t.data, t.numel(), seed, stddev, stream_);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void fill(Tensor& t, float value) override {
    kernels::fill(dt_, t.data, t.numel(), value, stream_);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  std::vector<float> download(const Tensor& t) override {
    std::vector<float> out(t.numel());
    if (out.empty()) return out;
    std::shared_ptr<void> owned;
    void* tmp;
    if (in_forward_) {
      bool overflow = false;
      tmp = arena_.take(out.size() * sizeof(float), &overflow);
    } else {
      owned = device_alloc(out.size() * sizeof(float));
      tmp = owned.get();
    }
    kernels::to_float(dt_, t.data, t.numel(), static_cast<float*>(tmp), stream_);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemcpyAsync(out.data(), tmp, out.size() * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    in_forward_ = false;
    return out;
  }

  void begin_forward(const ForwardBatch& b) override {
    // An error an unchecked call left on this thread would be blamed on this forward's first launch.
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess)
      std::fprintf(stderr, "lorax-engine: CUDA error %s left by an earlier call, before a forward\n", cudaGetErrorString(e));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    adapter_memory_->release_freed();
    lora_prepared_ = false;
    arena_.reset();
    arena_overflowed_ = false;
    in_forward_ = true;
    batch_ = &b;
    const size_t T = b.input_ids.size();
    // Block tables get a power-of-two row stride so recorded graphs stay valid
    // while sequences grow.
    stride_ = 1;
    while (stride_ < std::max(b.max_blocks, 1)) stride_ *= 2;
    bool moved = false;
    moved |= ids_.ensure(T);
    moved |= pos_.ensure(T);
    moved |= slots_.ensure(T);
    moved |= seq_of_token_.ensure(T);
    moved |= lm_rows_.ensure(std::max<size_t>(b.lm_head_indices.size(), 1));
    moved |= tables_.ensure(static_cast<size_t>(b.num_seqs()) * stride_ + 1);
    if (moved) invalidate_graphs();
    std::memcpy(ids_.host, b.input_ids.data(), T * 4);
    std::memcpy(pos_.host, b.position_ids.data(), T * 4);
    std::memcpy(slots_.host, b.slots.data(), T * 4);
    for (int s = 0; s < b.num_seqs(); ++s) {
      for (int t = b.cu_seqlens[s]; t < b.cu_seqlens[s + 1]; ++t) seq_of_token_.host[t] = s;
      for (int k = 0; k < stride_; ++k)
        tables_.host[s * stride_ + k] = k < b.max_blocks ? b.block_tables[s * b.max_blocks + k] : 0;
    }
    std::memcpy(lm_rows_.host, b.lm_head_indices.data(), b.lm_head_indices.size() * 4);
    for (MetaArray* m : {&ids_, &pos_, &slots_, &seq_of_token_})
      CUDA_CHECK(cudaMemcpyAsync(m->d(), m->host, T * 4, cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaMemcpyAsync(lm_rows_.d(), lm_rows_.host, b.lm_head_indices.size() * 4, cudaMemcpyHostToDevice,
                               stream_));
    CUDA_CHECK(cudaMemcpyAsync(tables_.d(), tables_.host, static_cast<size_t>(b.num_seqs()) * stride_ * 4,
                               cudaMemcpyHostToDevice, stream_));
    plan_prefill_tiles(b);
    // Context splits of attention are part of a recorded graph's shape.
    attention_ws_ = empty_floats(kernels::paged_attention_workspace(T, attn_q_heads_, attn_kv_heads_, attn_head_dim_, b.max_s));
  }

  void embed(const Tensor& table, const Tensor* pos_table, float multiplier, Tensor& out) override {
    kernels::embed(dt_, table.data, pos_table ? pos_table->data : nullptr, ids_.d(), pos_.d(), multiplier,
                   out.rows(), out.cols(), out.data, stream_);
    CUDA_CHECK_LAUNCH();
  }

  void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override {
    const int64_t m = w.rows(), n = x.rows(), k = x.cols();
    if (n == 0) return;
    // One row (batch-1 decode): a bandwidth-bound GEMV.
    if (use_gemv_ && n == 1 && kernels::gemv(dt_, x.data, w.data, bias ? bias->data : nullptr, y.data, static_cast<int>(n),
                                static_cast<int>(k), static_cast<int>(m), y.cols(), stream_)) {
      CUDA_CHECK_LAUNCH();
      return;
    }
    Plan& plan = plan_for(m, n, k, y.cols(), bias != nullptr);
    if (bias) {
      const void* bp = bias->data;
      CUDA_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof(bp)));
    }
    auto matmul = [&](const cublasLtMatmulAlgo_t* algo) {
      const float one = 1.0f, zero = 0.0f;
      return cublasLtMatmul(lt_, plan.desc, &one, w.data, plan.a, x.data, plan.b, &zero, y.data, plan.c, y.data, plan.c,
                            algo, workspace_.get(), workspace_bytes_, stream_);
    };
    if (!plan.tuned && n <= 256) tune(plan, matmul);  // prefill shapes vary too much to tune each
    CUDA_CHECK(matmul(plan.has_algo ? &plan.algo : nullptr));
  }

  void prepare_lora(const std::vector<LoraGroup>& groups) override {
    if (lora_tables_.prepare(groups, dt_, stream_, [this](int64_t n) { return static_cast<float*>(empty_floats(n).data); }))
      invalidate_graphs();
    lora_prepared_ = true;
  }

  void lora(const Tensor& x, const std::vector<AdapterSegment>& segments, const LoraCall& call, Tensor& y) override {
    for (const kernels::LoraCallArgs& a : lora_args(x, segments, {&call}, y)) {
      kernels::lora_shrink(dt_, a, stream_);
      CUDA_CHECK_LAUNCH();
      kernels::lora_expand(dt_, a, stream_);
      CUDA_CHECK_LAUNCH();
    }
  }

  // The shrinks need only x, so they run on a side stream while the base GEMM
  // runs; the expands add into y after both (fork/join through events, which
  // CUDA graphs record as dependencies). The GEMM is launched first: its CTAs
  // then take the SMs and the shrinks' small CTAs fill what it leaves (the other
  // way round the GEMM waited for SMs the shrinks held: 4 us more per layer
  // with Llama-3-8B shapes on an H100).
  void linear_lora(const Tensor& x, const Tensor& w, const Tensor* bias, const std::vector<AdapterSegment>& segments,
                   const std::vector<LoraCall>& calls, Tensor& y) override {
    std::vector<const LoraCall*> planned;
    for (const LoraCall& c : calls) planned.push_back(&c);
    const std::vector<kernels::LoraCallArgs> work = lora_args(x, segments, planned, y);
    if (work.empty()) return linear(x, w, bias, y);
    CUDA_CHECK(cudaEventRecord(fork_, stream_));
    linear(x, w, bias, y);
    CUDA_CHECK(cudaStreamWaitEvent(side_, fork_, 0));
    for (const auto& a : work) {
      kernels::lora_shrink(dt_, a, side_);
      CUDA_CHECK_LAUNCH();
    }
    CUDA_CHECK(cudaEventRecord(join_, side_));
    CUDA_CHECK(cudaStreamWaitEvent(stream_, join_, 0));
    for (const auto& a : work) {
      kernels::lora_expand(dt_, a, stream_);
      CUDA_CHECK_LAUNCH();
    }
  }

  void add(Tensor& y, const Tensor& x) override {
    kernels::add(dt_, y.data, x.data, y.numel(), stream_);
    CUDA_CHECK_LAUNCH();
  }

  void norm(const Tensor& x, NormKind kind, const Tensor& w, const Tensor* b, float eps, bool one_plus,
            Tensor& y) override {
    kernels::norm(dt_, x.data, nullptr, w.data, b ? b->data : nullptr, kind == NormKind::LayerNorm ? 0 : 1, eps,
                  one_plus, x.rows(), x.cols(), y.data, stream_);
    CUDA_CHECK_LAUNCH();
  }

  void add_norm(Tensor& h, const Tensor& delta, NormKind kind, const Tensor& w, const Tensor* b, float eps,
                bool one_plus, Tensor& y) override {
    kernels::norm(dt_, h.data, delta.data, w.data, b ? b->data : nullptr, kind == NormKind::LayerNorm ? 0 : 1, eps,
                  one_plus, h.rows(), h.cols(), y.data, stream_);
    CUDA_CHECK_LAUNCH();
  }

  void rope(Tensor& qkv, int num_heads, int num_kv_heads, int head_dim, int rotary_dim,
            const std::vector<float>& inv_freq) override {
    const float* freq = inv_freq_device(inv_freq);
    kernels::rope(dt_, qkv.data, pos_.d(), freq, qkv.rows(), qkv.cols(), num_heads + num_kv_heads, head_dim,
                  rotary_dim, stream_);
    CUDA_CHECK_LAUNCH();
  }

  void attention(Tensor& qkv, KvLayer& kv, int block_size, const AttentionParams& p, Tensor& out) override {
    // RoPE and the KV-cache write in one pass over the new tokens.
    kernels::KvQuant quant;
    quant.fp8 = kv.k.dtype == DType::F8E4M3;
    quant.k_scale = kv.k_scale;
    quant.v_scale = kv.v_scale;
    kernels::rope_kv_write(dt_, qkv.data, pos_.d(), p.rope_inv_freq ? inv_freq_device(*p.rope_inv_freq) : nullptr,
                           slots_.d(), qkv.rows(), qkv.cols(), p.num_heads, p.num_kv_heads, p.head_dim, p.rotary_dim,
                           kv.k.data, kv.v.data, quant, stream_);
    CUDA_CHECK_LAUNCH();
    kernels::AttentionArgs a{};
    a.qkv = qkv.data;
    a.k_cache = kv.k.data;
    a.v_cache = kv.v.data;
    a.out = out.data;
    a.positions = pos_.d();
    a.seq_of_token = seq_of_token_.d();
    a.block_tables = tables_.d();
    a.T = qkv.rows();
    a.width = qkv.cols();
    a.max_blocks = stride_;
    a.block_size = block_size;
    a.q_heads = p.num_heads;
    a.kv_heads = p.num_kv_heads;
    a.head_dim = p.head_dim;
    a.scale = p.scale;
    a.softcap = p.logit_softcap;
    a.window = p.sliding_window;
    a.max_context = batch_->max_s;
    a.no_tensor_cores = tensor_core_attention_off_;
    a.quant = quant;
    const int64_t ws = kernels::paged_attention_workspace(a.T, p.num_heads, p.num_kv_heads, p.head_dim, a.max_context);
    if (ws > attention_ws_.numel()) {
      // First sight of this head shape: size the workspace now; later forwards
      // size it in begin_forward.
      attn_q_heads_ = p.num_heads;
      attn_kv_heads_ = p.num_kv_heads;
      attn_head_dim_ = p.head_dim;
      attention_ws_ = empty_floats(ws);
    }
    a.workspace = static_cast<float*>(attention_ws_.data);
    a.workspace_floats = attention_ws_.numel();
    if (num_prefill_tiles_ > 0 && kernels::prefill_attention(dt_, a, prefill_tiles_.d(), num_prefill_tiles_, stream_)) {
      CUDA_CHECK_LAUNCH();
      a.token_index = other_tokens_.d();  // decodes and short chunks
      a.num_indexed = num_other_tokens_;
    }
    kernels::paged_attention(dt_, a, stream_);
    CUDA_CHECK_LAUNCH();
  }

  void activation(Tensor& x, Activation act) override {
    kernels::activation(dt_, x.data, x.numel(), static_cast<int>(act), stream_);
    CUDA_CHECK_LAUNCH();
  }
  void gated_activation(const Tensor& gate_up, Activation act, Tensor& out) override {
    kernels::gated_activation(dt_, gate_up.data, gate_up.rows(), gate_up.cols() / 2, static_cast<int>(act), out.data,
                              stream_);
    CUDA_CHECK_LAUNCH();
  }
  void gather_rows(const Tensor& x, Tensor& out) override {
    kernels::gather_rows(dt_, x.data, lm_rows_.d(), out.rows(), x.cols(), out.data, stream_);
    CUDA_CHECK_LAUNCH();
  }
  void argmax(const Tensor& logits, std::vector<int32_t>& ids, std::vector<float>& logprobs,
              const std::vector<AllowedTokens>& allowed) override {
    const int64_t rows = logits.rows(), vocab = logits.cols();
    ids.assign(rows, 0);
    logprobs.assign(rows, 0.0f);
    if (rows == 0) return;
    bool overflow = false;
    auto* dev_ids = static_cast<int32_t*>(arena_.take(rows * 4, &overflow));
    auto* dev_lp = static_cast<float*>(arena_.take(rows * 4, &overflow));
    void* ws = arena_.take(kernels::argmax_workspace_bytes(rows), &overflow);
    const uint32_t* dev_masks = nullptr;
    const int32_t* dev_mask_rows = nullptr;
    if (!allowed.empty()) {
      std::vector<uint32_t> masks;
      const std::vector<int32_t> mask_rows = pack_masks(allowed, vocab, masks);
      auto* m = static_cast<uint32_t*>(arena_.take(std::max<size_t>(masks.size(), 1) * 4, &overflow));
      auto* mr = static_cast<int32_t*>(arena_.take(rows * 4, &overflow));
      if (!masks.empty()) CUDA_CHECK(cudaMemcpyAsync(m, masks.data(), masks.size() * 4, cudaMemcpyHostToDevice, stream_));
      CUDA_CHECK(cudaMemcpyAsync(mr, mask_rows.data(), rows * 4, cudaMemcpyHostToDevice, stream_));
      dev_masks = m;
      dev_mask_rows = mr;
    }
    kernels::argmax_logprob(dt_, logits.data, rows, vocab, dev_ids, dev_lp, ws, stream_, dev_masks, dev_mask_rows);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemcpyAsync(ids.data(), dev_ids, rows * 4, cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaMemcpyAsync(logprobs.data(), dev_lp, rows * 4, cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    in_forward_ = false;
  }

  // The constrained rows' masks as the kernels read them: one row of ceil(vocab / 32)
  // words each, padded or cut to the logits' vocabulary; per row its mask's index or -1.
  static std::vector<int32_t> pack_masks(const std::vector<AllowedTokens>& allowed, int64_t vocab,
                                         std::vector<uint32_t>& masks) {
    const int64_t words = (vocab + 31) / 32;
    std::vector<int32_t> mask_rows(allowed.size(), -1);
    for (size_t r = 0; r < allowed.size(); ++r) {
      if (!allowed[r]) continue;
      mask_rows[r] = static_cast<int32_t>(masks.size() / words);
      masks.resize(masks.size() + words, 0);
      std::copy_n(allowed[r].words, std::min<int64_t>(words, static_cast<int64_t>(allowed[r].count)), masks.end() - words);
    }
    return mask_rows;
  }

  static_assert(kernels::kMaxChooseTop == kMaxTopTokens, "one bound on alternatives");
  // Penalties, warpers and the draw on the GPU (kernels/choose.cu).
  bool choose_tokens(const Tensor& logits, const std::vector<RowChoice>& rows, std::vector<TokenChoice>& out) override {
    const int64_t n = static_cast<int64_t>(rows.size()), vocab = logits.cols();
    out.assign(n, TokenChoice{});
    std::vector<kernels::ChooseRow> params(n);
    std::vector<int32_t> penalties;
    std::vector<AllowedTokens> allowed(n);
    for (int64_t i = 0; i < n; ++i)
      if (rows[i].prompt_target < 0) allowed[i] = rows[i].allowed;
    std::vector<uint32_t> masks;
    const std::vector<int32_t> mask_rows = pack_masks(allowed, vocab, masks);
    bool any_top = false;
    for (int64_t i = 0; i < n; ++i) {
      const RowChoice& r = rows[i];
      kernels::ChooseRow& p = params[i];
      p = {r.prompt_target, r.sample ? 1 : 0, r.top_k, static_cast<int32_t>(penalties.size() / 3),
           static_cast<int32_t>(r.penalties.size()), mask_rows[i], std::clamp(r.top_n, 0, kMaxTopTokens),
           r.temperature, r.top_p, r.typical_p, r.repetition_penalty, r.frequency_penalty, r.presence_penalty,
           r.uniform};
      any_top = any_top || p.top_n > 0;
      for (const PenaltyToken& t : r.penalties) penalties.insert(penalties.end(), {t.token, t.generated_count, t.in_context});
    }
    if (n > 0) {
      bool overflow = false;
      auto* dev_params = static_cast<kernels::ChooseRow*>(arena_.take(n * sizeof(kernels::ChooseRow), &overflow));
      auto* dev_pen = static_cast<int32_t*>(arena_.take(std::max<size_t>(penalties.size(), 1) * 4, &overflow));
      auto* dev_masks = static_cast<uint32_t*>(arena_.take(std::max<size_t>(masks.size(), 1) * 4, &overflow));
      auto* scratch = static_cast<float*>(arena_.take(n * vocab * 4, &overflow));
      auto* dev_ids = static_cast<int32_t*>(arena_.take(n * 4, &overflow));
      auto* dev_lp = static_cast<float*>(arena_.take(n * 4, &overflow));
      auto* dev_top_ids = static_cast<int32_t*>(arena_.take(n * kernels::kMaxChooseTop * 4, &overflow));
      auto* dev_top_lp = static_cast<float*>(arena_.take(n * kernels::kMaxChooseTop * 4, &overflow));
      CUDA_CHECK(cudaMemcpyAsync(dev_params, params.data(), n * sizeof(kernels::ChooseRow), cudaMemcpyHostToDevice, stream_));
      CUDA_CHECK(cudaMemcpyAsync(dev_pen, penalties.data(), penalties.size() * 4, cudaMemcpyHostToDevice, stream_));
      if (!masks.empty())
        CUDA_CHECK(cudaMemcpyAsync(dev_masks, masks.data(), masks.size() * 4, cudaMemcpyHostToDevice, stream_));
      kernels::choose_tokens(dt_, logits.data, n, vocab, dev_params, dev_pen, dev_masks, scratch, dev_ids, dev_lp,
                             dev_top_ids, dev_top_lp, stream_);
      CUDA_CHECK_LAUNCH();
      std::vector<int32_t> ids(n), top_ids(any_top ? n * kernels::kMaxChooseTop : 0);
      std::vector<float> lps(n), top_lps(top_ids.size());
      CUDA_CHECK(cudaMemcpyAsync(ids.data(), dev_ids, n * 4, cudaMemcpyDeviceToHost, stream_));
      CUDA_CHECK(cudaMemcpyAsync(lps.data(), dev_lp, n * 4, cudaMemcpyDeviceToHost, stream_));
      if (any_top) {  // only when some row asked: a decode step copies nothing more
        CUDA_CHECK(cudaMemcpyAsync(top_ids.data(), dev_top_ids, top_ids.size() * 4, cudaMemcpyDeviceToHost, stream_));
        CUDA_CHECK(cudaMemcpyAsync(top_lps.data(), dev_top_lp, top_lps.size() * 4, cudaMemcpyDeviceToHost, stream_));
      }
      CUDA_CHECK(cudaStreamSynchronize(stream_));
      for (int64_t i = 0; i < n; ++i) {
        out[i].id = ids[i];
        out[i].logprob = lps[i];
        for (int k = 0; k < params[i].top_n; ++k) {
          const int64_t at = i * kernels::kMaxChooseTop + k;
          if (top_ids[at] < 0) break;
          out[i].top.push_back({top_ids[at], top_lps[at]});
        }
      }
    }
    in_forward_ = false;
    return true;
  }

  void softcap(Tensor& x, float cap) override {
    kernels::softcap(dt_, x.data, x.numel(), cap, stream_);
    CUDA_CHECK_LAUNCH();
  }

  void run_graph(const std::string& key, const std::function<void()>& body) override {
    if (arena_overflowed_ || graphs_disabled_) return body();
    std::string full = key + ":s" + std::to_string(stride_) + ":a" + std::to_string(attention_ws_.numel()) + ":g" +
                       std::to_string(arena_.generation());
    if (lora_prepared_) full += ":" + lora_tables_.graph_key();
    auto it = graphs_.find(full);
    if (it != graphs_.end()) {
      it->second.last_use = ++graph_clock_;
      CUDA_CHECK(cudaGraphLaunch(it->second.exec, stream_));
      return;
    }
    // Record a shape the second time it is seen (the first run sizes the arena).
    if (++seen_[full] < 2) return body();
    cudaGraph_t graph;
    CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    try {
      body();
    } catch (...) {
      CUDA_WARN(cudaStreamEndCapture(stream_, &graph));
      throw;
    }
    CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
    if (arena_overflowed_) {  // an op allocated past the arena while recording: not replayable
      CUDA_WARN(cudaGraphDestroy(graph));
      return body();
    }
    cudaGraphExec_t exec;
    CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    CUDA_WARN(cudaGraphDestroy(graph));
    evict_graphs();
    graphs_[full] = {exec, ++graph_clock_};
    CUDA_CHECK(cudaGraphLaunch(exec, stream_));
  }

 private:
  struct Plan {
    cublasLtMatmulDesc_t desc{};
    cublasLtMatrixLayout_t a{}, b{}, c{};
    cublasLtMatmulAlgo_t algo{};
    bool has_algo = false;
    bool tuned = false;
    std::vector<cublasLtMatmulAlgo_t> candidates;
  };
  struct Graph {
    cudaGraphExec_t exec;
    uint64_t last_use = 0;
  };
  static constexpr size_t kMaxGraphs = 64;
  static constexpr int kGemmCandidates = 24;

  // Batch compositions come and go; keep the most recently used recordings.
  void evict_graphs() {
    while (graphs_.size() >= kMaxGraphs) {
      auto oldest = graphs_.begin();
      for (auto it = graphs_.begin(); it != graphs_.end(); ++it)
        if (it->second.last_use < oldest->second.last_use) oldest = it;
      CUDA_WARN(cudaGraphExecDestroy(oldest->second.exec));
      graphs_.erase(oldest);
    }
    if (seen_.size() > 4096) seen_.clear();
  }

  // y[n, m] (row-major, leading dim ldy) = x[n, k] W[m, k]^T, computed as the
  // column-major product C(m x n) = W^T' * X' with W transposed.
  Plan& plan_for(int64_t m, int64_t n, int64_t k, int64_t ldy, bool bias) {
    auto key = std::make_tuple(m, n, k, ldy, bias);
    auto it = plans_.find(key);
    if (it != plans_.end()) return it->second;
    Plan p;
    const cudaDataType_t t = to_cuda(dtype_);
    CUDA_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CUDA_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
    CUDA_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
    if (bias) {
      cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
      CUDA_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
      cudaDataType_t bt = t;
      CUDA_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof(bt)));
    }
    CUDA_CHECK(cublasLtMatrixLayoutCreate(&p.a, t, k, m, k));
    CUDA_CHECK(cublasLtMatrixLayoutCreate(&p.b, t, k, n, k));
    CUDA_CHECK(cublasLtMatrixLayoutCreate(&p.c, t, m, n, ldy));
    cublasLtMatmulPreference_t pref;
    CUDA_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    CUDA_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes_,
                                                    sizeof(workspace_bytes_)));
    // Enough candidates that split-K and small-tile variants are among them:
    // decode GEMMs (64 rows) with the heuristic's choice left SMs idle.
    cublasLtMatmulHeuristicResult_t results[kGemmCandidates];
    int found = 0;
    if (cublasLtMatmulAlgoGetHeuristic(lt_, p.desc, p.a, p.b, p.c, p.c, pref, kGemmCandidates, results, &found) ==
            CUBLAS_STATUS_SUCCESS &&
        found > 0) {
      p.algo = results[0].algo;
      p.has_algo = true;
      for (int i = 0; i < found; ++i)
        if (results[i].state == CUBLAS_STATUS_SUCCESS) p.candidates.push_back(results[i].algo);
    }
    cublasLtMatmulPreferenceDestroy(pref);
    return plans_.emplace(key, p).first->second;
  }

  // The heuristic's first choice is often not the fastest for skinny decode
  // shapes: time its top candidates once per shape, on the real operands.
  template <typename F>
  void tune(Plan& plan, F matmul) {
    plan.tuned = true;
    cudaStreamCaptureStatus capturing;
    CUDA_CHECK(cudaStreamIsCapturing(stream_, &capturing));
    if (capturing != cudaStreamCaptureStatusNone || plan.candidates.size() < 2) return;
    cudaEvent_t start, stop;
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&stop));
    float best = INFINITY;
    for (const cublasLtMatmulAlgo_t& algo : plan.candidates) {
      if (matmul(&algo) != CUBLAS_STATUS_SUCCESS) {  // warm-up; skips algos that refuse the operands
        cudaGetLastError();  // and the launch error a refusal may leave behind
        continue;
      }
      CUDA_CHECK(cudaEventRecord(start, stream_));
      for (int i = 0; i < 5; ++i) CUDA_CHECK(matmul(&algo));
      CUDA_CHECK(cudaEventRecord(stop, stream_));
      CUDA_CHECK(cudaEventSynchronize(stop));
      float ms = 0;
      CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
      if (ms < best) {
        best = ms;
        plan.algo = algo;
        plan.has_algo = true;
      }
    }
    CUDA_WARN(cudaEventDestroy(start));
    CUDA_WARN(cudaEventDestroy(stop));
  }

  Tensor empty_floats(int64_t n) {
    Tensor t;
    t.shape = {std::max<int64_t>(n, 1)};
    t.dtype = DType::F32;
    bool overflow = false;
    t.data = arena_.take(t.numel() * 4, &overflow);
    arena_overflowed_ |= overflow;
    return t;
  }

  const float* inv_freq_device(const std::vector<float>& inv) {
    auto it = inv_freq_cache_.find(inv);
    if (it != inv_freq_cache_.end()) return static_cast<const float*>(it->second.get());
    auto buf = device_alloc(inv.size() * 4);
    CUDA_CHECK(cudaMemcpy(buf.get(), inv.data(), inv.size() * 4, cudaMemcpyHostToDevice));
    inv_freq_cache_[inv] = buf;
    return static_cast<const float*>(buf.get());
  }

  // Launch arguments of `calls`: from the forward's tables when prepare_lora
  // planned them, else (a direct call outside a planned forward, as the op tests
  // make) from tables laid out for these calls alone.
  std::vector<kernels::LoraCallArgs> lora_args(const Tensor& x, const std::vector<AdapterSegment>& segments,
                                               const std::vector<const LoraCall*>& calls, Tensor& y) {
    std::vector<kernels::LoraCallArgs> out;
    bool planned = lora_prepared_;
    for (const LoraCall* c : calls) planned = planned && lora_tables_.has(c->id);
    if (planned) {
      for (const LoraCall* c : calls) out.push_back(lora_tables_.args(c->id, x, y));
      return out;
    }
    std::vector<LoraCall> numbered;
    for (const LoraCall* c : calls) numbered.push_back(*c);
    LoraGroup group{&segments, x.rows(), {}};
    for (size_t i = 0; i < numbered.size(); ++i) {
      numbered[i].id = static_cast<int>(i);
      group.calls.push_back(&numbered[i]);
    }
    adhoc_lora_tables_.prepare({group}, dt_, stream_, [this](int64_t n) { return static_cast<float*>(empty_floats(n).data); });
    CUDA_CHECK(cudaStreamSynchronize(stream_));  // its pinned mirror is rewritten by the next direct call
    for (size_t i = 0; i < numbered.size(); ++i) out.push_back(adhoc_lora_tables_.args(static_cast<int>(i), x, y));
    return out;
  }

  // Runs of at least kMinTensorCoreRun tokens of one sequence (prompts, prefill
  // chunks) go to the tensor-core kernel in tiles, longest contexts first so the
  // heaviest CTAs start early; the other tokens to the paged kernel. Decode-only
  // steps (the ones recorded as graphs) have no tiles and skip all this.
  void plan_prefill_tiles(const ForwardBatch& b) {
    static constexpr int kMinTensorCoreRun = 16;
    num_prefill_tiles_ = num_other_tokens_ = 0;
    if (dt_ == Dt::F32 || tensor_core_attention_off_) return;
    std::vector<std::array<int32_t, 2>> runs;  // (first token, rows)
    std::vector<int32_t> others;
    for (int s = 0; s < b.num_seqs(); ++s) {
      const int begin = b.cu_seqlens[s], end = b.cu_seqlens[s + 1];
      if (end - begin < kMinTensorCoreRun) {
        for (int t = begin; t < end; ++t) others.push_back(t);
        continue;
      }
      for (int start = begin; start < end; start += kernels::kPrefillTileRows)
        runs.push_back({start, std::min(end - start, kernels::kPrefillTileRows)});
    }
    if (runs.empty()) return;
    // Longest context first (a tile's work grows with its last position), so
    // the kernel's last wave holds the lightest tiles of the whole batch.
    std::stable_sort(runs.begin(), runs.end(), [&](const auto& x, const auto& y) {
      return b.position_ids[x[0] + x[1] - 1] > b.position_ids[y[0] + y[1] - 1];
    });
    std::vector<int32_t> tiles;
    for (const auto& r : runs) tiles.insert(tiles.end(), r.begin(), r.end());
    prefill_tiles_.ensure(tiles.size());
    other_tokens_.ensure(std::max<size_t>(others.size(), 1));
    std::memcpy(prefill_tiles_.host, tiles.data(), tiles.size() * 4);
    std::memcpy(other_tokens_.host, others.data(), others.size() * 4);
    CUDA_CHECK(cudaMemcpyAsync(prefill_tiles_.d(), prefill_tiles_.host, tiles.size() * 4, cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaMemcpyAsync(other_tokens_.d(), other_tokens_.host, others.size() * 4, cudaMemcpyHostToDevice, stream_));
    num_prefill_tiles_ = static_cast<int>(tiles.size() / 2);
    num_other_tokens_ = static_cast<int64_t>(others.size());
  }

  void invalidate_graphs() {
    for (auto& [k, g] : graphs_) CUDA_WARN(cudaGraphExecDestroy(g.exec));
    graphs_.clear();
    seen_.clear();
  }

  DType dtype_;
  Dt dt_;
  cudaStream_t stream_{};
  cudaStream_t side_{};  // LoRA shrinks beside the base GEMM
  cudaEvent_t fork_{}, join_{};
  cublasLtHandle_t lt_{};
  std::shared_ptr<void> workspace_;
  size_t workspace_bytes_ = 0;
  Arena arena_;
  bool in_forward_ = false;
  bool arena_overflowed_ = false;
  bool graphs_disabled_ = std::getenv("LORAX_NO_CUDA_GRAPHS") != nullptr;
  bool use_gemv_ = std::getenv("LORAX_NO_GEMV") == nullptr;  // for A/B benchmarks against cuBLASLt
  const ForwardBatch* batch_ = nullptr;
  MetaArray ids_, pos_, slots_, seq_of_token_, lm_rows_, tables_;
  bool tensor_core_attention_off_ = std::getenv("LORAX_NO_TC_ATTENTION") != nullptr;  // for A/B benchmarks
  MetaArray prefill_tiles_, other_tokens_;  // see plan_prefill_tiles
  int num_prefill_tiles_ = 0;
  int64_t num_other_tokens_ = 0;
  int stride_ = 1;
  int attn_q_heads_ = 1, attn_kv_heads_ = 1, attn_head_dim_ = 1;
  Tensor attention_ws_;
  std::unique_ptr<cuda::AdapterMemory> adapter_memory_;
  cuda::LoraTables lora_tables_, adhoc_lora_tables_;  // the forward's LoRA work (prepare_lora); direct calls' work
  bool lora_prepared_ = false;
  std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, bool>, Plan> plans_;
  std::map<std::vector<float>, std::shared_ptr<void>> inv_freq_cache_;
  std::unordered_map<std::string, Graph> graphs_;
  std::unordered_map<std::string, int> seen_;
  uint64_t graph_clock_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(DType dtype, int device) {
  return std::make_unique<CudaBackend>(dtype, device);
}

}  // namespace lorax
