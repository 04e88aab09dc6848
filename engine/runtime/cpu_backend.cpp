// The reference backend: float32 on the host, OpenBLAS for GEMMs, OpenMP threads
// for everything else. Attention is written out plainly (one query row at a time
// through the block table) because it is the reference the CUDA kernels are
// checked against.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>

#include "runtime/backend.h"
#include "runtime/fp8_e4m3.h"

namespace lorax {
namespace {

float apply_activation(float x, Activation act) {
  switch (act) {
    case Activation::Gelu: return 0.5f * x * (1.0f + std::erf(x * static_cast<float>(M_SQRT1_2)));
    case Activation::GeluTanh: {
      const float c = 0.7978845608028654f;  // sqrt(2/pi)
      return 0.5f * x * (1.0f + std::tanh(c * (x + 0.044715f * x * x * x)));
    }
    case Activation::Silu: return x / (1.0f + std::exp(-x));
    case Activation::Relu: return x > 0 ? x : 0.0f;
  }
  return x;
}

// Below this many elements a loop runs on one thread: waking a team costs more
// than tiny decode-sized work (and oversubscribed machines make it far worse).
constexpr int64_t kParallelMin = 1 << 16;

void check_cols(const Tensor& t, int64_t cols, const char* what) {
  if (t.cols() != cols) throw std::invalid_argument(std::string("cpu backend: ") + what + " has " +
                                                    std::to_string(t.cols()) + " columns, expected " + std::to_string(cols));
}

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads) {
    if (threads > 0) {
      omp_set_num_threads(threads);
      openblas_set_num_threads(threads);
    }
  }
  std::string name() const override { return "cpu"; }
  DType compute_dtype() const override { return DType::F32; }

  Tensor empty(const std::vector<int64_t>& shape) override {
    Tensor t;
    t.shape = shape;
    t.dtype = DType::F32;
    auto buf = std::shared_ptr<float[]>(new float[std::max<int64_t>(t.numel(), 1)]);
    t.data = buf.get();
    t.owner = buf;
    return t;
  }
  bool supports_fp8_kv() const override { return true; }  // emulated: e4m3 codes in host memory
  Tensor empty_as(const std::vector<int64_t>& shape, DType dtype) override {
    if (dtype != DType::F8E4M3) return Backend::empty_as(shape, dtype);
    Tensor t;
    t.shape = shape;
    t.dtype = dtype;
    auto buf = std::shared_ptr<uint8_t[]>(new uint8_t[std::max<int64_t>(t.numel(), 1)]());
    t.data = buf.get();
    t.owner = buf;
    return t;
  }
  Tensor upload(const float* host, const std::vector<int64_t>& shape) override {
    Tensor t = empty(shape);
    std::memcpy(t.data, host, t.bytes());
    return t;
  }
  std::vector<float> download(const Tensor& t) override {
    const float* p = t.as<float>();
    return std::vector<float>(p, p + t.numel());
  }

  void fill_random(Tensor& t, uint64_t seed, float stddev) override {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, stddev);
    float* p = t.as<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = normal(rng);
  }
  void fill(Tensor& t, float value) override { std::fill(t.as<float>(), t.as<float>() + t.numel(), value); }

  void begin_forward(const ForwardBatch& batch) override {
    batch_ = &batch;
    seq_of_token_.assign(batch.num_tokens(), 0);
    for (int b = 0; b < batch.num_seqs(); ++b)
      for (int t = batch.cu_seqlens[b]; t < batch.cu_seqlens[b + 1]; ++t) seq_of_token_[t] = b;
  }

  void embed(const Tensor& table, const Tensor* pos_table, float multiplier, Tensor& out) override {
    const int64_t h = table.cols();
    const auto& ids = batch_->input_ids;  // validated by the model before the forward
#pragma omp parallel for if (static_cast<int64_t>(ids.size()) * h >= kParallelMin)
    for (int64_t t = 0; t < static_cast<int64_t>(ids.size()); ++t) {
      const float* src = table.as<float>() + ids[t] * h;
      float* dst = out.as<float>() + t * h;
      for (int64_t i = 0; i < h; ++i) dst[i] = src[i] * multiplier;
      if (pos_table) {
        const float* pos = pos_table->as<float>() + batch_->position_ids[t] * h;
        for (int64_t i = 0; i < h; ++i) dst[i] += pos[i];
      }
    }
  }

  void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override {
    const int64_t m = x.rows(), k = x.cols(), n = w.rows();
    check_cols(w, k, "weight");
    check_cols(y, n, "output");
    if (m == 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x.as<float>(), k, w.as<float>(), k, 0.0f,
                y.as<float>(), n);
    if (bias) {
      const float* b = bias->as<float>();
#pragma omp parallel for if (m * n >= kParallelMin)
      for (int64_t r = 0; r < m; ++r) {
        float* row = y.as<float>() + r * n;
        for (int64_t c = 0; c < n; ++c) row[c] += b[c];
      }
    }
  }

  void lora(const Tensor& x, const std::vector<AdapterSegment>& segments, const LoraCall& call, Tensor& y) override {
    const int64_t k = x.cols(), ldy = y.cols(), col_offset = call.col_offset;
    const std::vector<const LoraPair*>& pairs = call.pairs;
    for (const AdapterSegment& seg : segments) {
      if (seg.adapter < 0 || seg.adapter >= static_cast<int>(pairs.size()) || !pairs[seg.adapter]) continue;
      const LoraPair& p = *pairs[seg.adapter];
      const int64_t rows = seg.end - seg.start, r = p.rank, out = p.b.rows();
      if (rows <= 0) continue;
      std::vector<float> shrunk(rows * r);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, r, k, 1.0f, x.as<float>() + seg.start * k, k,
                  p.a.as<float>(), k, 0.0f, shrunk.data(), r);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, out, r, p.scale, shrunk.data(), r, p.b.as<float>(), r,
                  1.0f, y.as<float>() + seg.start * ldy + col_offset, ldy);
    }
  }

  void add(Tensor& y, const Tensor& x) override {
    float* a = y.as<float>();
    const float* b = x.as<float>();
    const int64_t n = y.numel();
#pragma omp parallel for if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) a[i] += b[i];
  }

  void norm(const Tensor& x, NormKind kind, const Tensor& w, const Tensor* b, float eps, bool one_plus,
            Tensor& y) override {
    const int64_t rows = x.rows(), h = x.cols();
    const float* wp = w.as<float>();
    const float* bp = b ? b->as<float>() : nullptr;
#pragma omp parallel for if (rows * h >= kParallelMin)
    for (int64_t r = 0; r < rows; ++r) {
      const float* in = x.as<float>() + r * h;
      float* out = y.as<float>() + r * h;
      double mean = 0, var = 0;
      if (kind == NormKind::LayerNorm) {
        for (int64_t i = 0; i < h; ++i) mean += in[i];
        mean /= h;
        for (int64_t i = 0; i < h; ++i) var += (in[i] - mean) * (in[i] - mean);
      } else {
        for (int64_t i = 0; i < h; ++i) var += static_cast<double>(in[i]) * in[i];
      }
      const float inv = static_cast<float>(1.0 / std::sqrt(var / h + eps));
      for (int64_t i = 0; i < h; ++i) {
        float v = static_cast<float>(in[i] - mean) * inv;
        v *= one_plus ? 1.0f + wp[i] : wp[i];
        out[i] = bp ? v + bp[i] : v;
      }
    }
  }

  void rope(Tensor& qkv, int num_heads, int num_kv_heads, int head_dim, int rotary_dim,
            const std::vector<float>& inv_freq) override {
    const int64_t T = qkv.rows(), width = qkv.cols();
    const int half = rotary_dim / 2;
    const int heads = num_heads + num_kv_heads;  // q heads then k heads are contiguous
#pragma omp parallel for if (T * heads * rotary_dim >= kParallelMin)
    for (int64_t t = 0; t < T; ++t) {
      const double pos = batch_->position_ids[t];
      std::vector<float> cos_v(half), sin_v(half);
      for (int i = 0; i < half; ++i) {
        const double angle = pos * inv_freq[i];
        cos_v[i] = static_cast<float>(std::cos(angle));
        sin_v[i] = static_cast<float>(std::sin(angle));
      }
      for (int hd = 0; hd < heads; ++hd) {
        float* v = qkv.as<float>() + t * width + static_cast<int64_t>(hd) * head_dim;
        for (int i = 0; i < half; ++i) {
          const float x1 = v[i], x2 = v[i + half];
          v[i] = x1 * cos_v[i] - x2 * sin_v[i];
          v[i + half] = x2 * cos_v[i] + x1 * sin_v[i];
        }
      }
    }
  }

  void attention(Tensor& qkv, KvLayer& kv, int block_size, const AttentionParams& p, Tensor& out) override {
    if (p.rope_inv_freq) rope(qkv, p.num_heads, p.num_kv_heads, p.head_dim, p.rotary_dim, *p.rope_inv_freq);
    const ForwardBatch& batch = *batch_;
    const int64_t T = qkv.rows(), width = qkv.cols();
    const int D = p.head_dim, Hq = p.num_heads, Hkv = p.num_kv_heads, group = Hq / Hkv;
    const int64_t kv_row = static_cast<int64_t>(Hkv) * D;
    // 1. Write this step's K/V so every query below sees its full context.
    const bool fp8 = kv.k.dtype == DType::F8E4M3;
    for (int64_t t = 0; t < T; ++t) {
      const float* src = qkv.as<float>() + t * width + static_cast<int64_t>(Hq) * D;
      const int64_t slot = batch.slots[t];
      if (fp8) {
        // Multiplying by the inverse, as the CUDA write does, so both round the same float.
        const float k_inv = 1.0f / kv.k_scale, v_inv = 1.0f / kv.v_scale;
        uint8_t* k = kv.k.as<uint8_t>() + slot * kv_row;
        uint8_t* v = kv.v.as<uint8_t>() + slot * kv_row;
        for (int64_t i = 0; i < kv_row; ++i) {
          k[i] = fp8_e4m3_encode(src[i] * k_inv);
          v[i] = fp8_e4m3_encode(src[kv_row + i] * v_inv);
        }
      } else {
        std::memcpy(kv.k.as<float>() + slot * kv_row, src, kv_row * sizeof(float));
        std::memcpy(kv.v.as<float>() + slot * kv_row, src + kv_row, kv_row * sizeof(float));
      }
    }
    // An FP8 row is read back decoded (code * scale) into `row`, a float row as it is.
    const std::array<float, 256>& fp8_values = fp8_e4m3_values();
    auto kv_row_of = [&](const Tensor& cache, float scale, int64_t slot, int kvh, float* row) -> const float* {
      const int64_t off = slot * kv_row + static_cast<int64_t>(kvh) * D;
      if (!fp8) return cache.as<float>() + off;
      const uint8_t* codes = cache.as<uint8_t>() + off;
      for (int d = 0; d < D; ++d) row[d] = fp8_values[codes[d]] * scale;
      return row;
    };
    // 2. Attend: query t at position pos sees positions [lo, pos] of its sequence.
#pragma omp parallel for collapse(2) schedule(dynamic, 4) if (T * Hq * D * batch.max_s >= kParallelMin * 16)
    for (int64_t t = 0; t < T; ++t) {
      for (int h = 0; h < Hq; ++h) {
        const int seq = seq_of_token_[t];
        const int pos = batch.position_ids[t];
        const int lo = p.sliding_window > 0 ? std::max(0, pos - p.sliding_window + 1) : 0;
        const int32_t* table = batch.block_tables.data() + static_cast<int64_t>(seq) * batch.max_blocks;
        const float* q = qkv.as<float>() + t * width + static_cast<int64_t>(h) * D;
        const int kvh = h / group;
        std::vector<float> scores(pos - lo + 1), decoded(fp8 ? D : 0);
        float max_score = -INFINITY;
        for (int j = lo; j <= pos; ++j) {
          const int64_t slot = static_cast<int64_t>(table[j / block_size]) * block_size + j % block_size;
          const float* k = kv_row_of(kv.k, kv.k_scale, slot, kvh, decoded.data());
          float dot = 0;
          for (int d = 0; d < D; ++d) dot += q[d] * k[d];
          float s = dot * p.scale;
          if (p.logit_softcap > 0) s = p.logit_softcap * std::tanh(s / p.logit_softcap);
          scores[j - lo] = s;
          max_score = std::max(max_score, s);
        }
        double denom = 0;
        for (float& s : scores) {
          s = std::exp(s - max_score);
          denom += s;
        }
        float* o = out.as<float>() + t * static_cast<int64_t>(Hq) * D + static_cast<int64_t>(h) * D;
        std::fill(o, o + D, 0.0f);
        for (int j = lo; j <= pos; ++j) {
          const int64_t slot = static_cast<int64_t>(table[j / block_size]) * block_size + j % block_size;
          const float* v = kv_row_of(kv.v, kv.v_scale, slot, kvh, decoded.data());
          const float w = static_cast<float>(scores[j - lo] / denom);
          for (int d = 0; d < D; ++d) o[d] += w * v[d];
        }
      }
    }
  }

  void activation(Tensor& x, Activation act) override {
    float* p = x.as<float>();
    const int64_t n = x.numel();
#pragma omp parallel for if (n >= kParallelMin / 8)
    for (int64_t i = 0; i < n; ++i) p[i] = apply_activation(p[i], act);
  }

  void gated_activation(const Tensor& gate_up, Activation act, Tensor& out) override {
    const int64_t rows = gate_up.rows(), n = gate_up.cols() / 2;
    check_cols(out, n, "gated activation output");
#pragma omp parallel for if (rows * n >= kParallelMin / 8)
    for (int64_t r = 0; r < rows; ++r) {
      const float* g = gate_up.as<float>() + r * 2 * n;
      float* o = out.as<float>() + r * n;
      for (int64_t i = 0; i < n; ++i) o[i] = apply_activation(g[i], act) * g[n + i];
    }
  }

  void gather_rows(const Tensor& x, Tensor& out) override {
    const int64_t h = x.cols();
    const auto& rows = batch_->lm_head_indices;
    for (size_t i = 0; i < rows.size(); ++i)
      std::memcpy(out.as<float>() + i * h, x.as<float>() + static_cast<int64_t>(rows[i]) * h, h * sizeof(float));
  }

  void argmax(const Tensor& logits, std::vector<int32_t>& ids, std::vector<float>& logprobs,
              const std::vector<AllowedTokens>& allowed) override {
    const int64_t rows = logits.rows(), v = logits.cols();
    ids.assign(rows, 0);
    logprobs.assign(rows, 0.0f);
    for (int64_t r = 0; r < rows; ++r) {
      const float* x = logits.as<float>() + r * v;
      const AllowedTokens mask = allowed.empty() ? AllowedTokens{} : allowed[r];
      int64_t best = -1;  // the first of equal maxima, as std::max_element
      for (int64_t i = 0; i < v; ++i)
        if (mask.allows(i) && (best < 0 || x[i] > x[best])) best = i;
      if (best < 0) best = 0;  // nothing allowed: cannot happen for a live constraint
      double sum = 0;
      for (int64_t i = 0; i < v; ++i)
        if (mask.allows(i)) sum += std::exp(static_cast<double>(x[i]) - x[best]);
      ids[r] = static_cast<int32_t>(best);
      logprobs[r] = static_cast<float>(-std::log(sum));
    }
  }

  void softcap(Tensor& x, float cap) override {
    float* p = x.as<float>();
    const int64_t n = x.numel();
#pragma omp parallel for if (n >= kParallelMin / 8)
    for (int64_t i = 0; i < n; ++i) p[i] = cap * std::tanh(p[i] / cap);
  }

 private:
  const ForwardBatch* batch_ = nullptr;
  std::vector<int> seq_of_token_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int num_threads) { return std::make_unique<CpuBackend>(num_threads); }

}  // namespace lorax
