// Every CUDA backend op against the CPU reference backend on random inputs:
// sizes that are not multiples of any tile, mixed prefill/decode batches over
// scattered KV blocks, GQA, sliding windows, softcaps, contexts long enough to
// split, and LoRA segments of mixed ranks. Outputs are poisoned first so an
// unwritten element shows. Run with LORAX_GPU_DTYPE=float32|bfloat16|float16.
#include <cuda_fp16.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>

#include "kernels/kernels.h"
#include "runtime/backend.h"
#include "runtime/fp8_e4m3.h"
#include "runtime/cuda/cuda_backend.h"
#include "sampling/sampling.h"

namespace lorax {
namespace {

DType gpu_dtype() {
  const char* e = std::getenv("LORAX_GPU_DTYPE");
  std::string s = e ? e : "float32";
  return s == "bfloat16" ? DType::BF16 : s == "float16" ? DType::F16 : DType::F32;
}
double tolerance() { return gpu_dtype() == DType::F32 ? 2e-5 : 2e-2; }

struct Pair {
  std::unique_ptr<Backend> cpu = make_cpu_backend(0);
  std::unique_ptr<Backend> gpu = make_cuda_backend(gpu_dtype());
  std::mt19937 rng{std::random_device{}()};

  std::vector<float> random(int64_t n, float scale = 1.0f) {
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    // Round through the GPU storage type so both sides see identical inputs.
    if (gpu_dtype() != DType::F32 && n > 0) v = gpu->download(gpu->upload(v.data(), {n}));
    return v;
  }
  struct Both {
    Tensor c, g;
  };
  Both make(const std::vector<float>& host, std::vector<int64_t> shape) {
    return {cpu->upload(host.data(), shape), gpu->upload(host.data(), shape)};
  }
  Both poisoned(std::vector<int64_t> shape) {
    int64_t n = std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<int64_t>());
    std::vector<float> nan(n, std::nanf(""));
    return make(nan, shape);
  }
};

double rel_error(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

void expect_close(Pair& p, const Pair::Both& t, const char* what, double tol = tolerance()) {
  auto want = p.cpu->download(t.c), got = p.gpu->download(t.g);
  ASSERT_EQ(want.size(), got.size());
  double err = rel_error(got, want);
  EXPECT_LT(err, tol) << what << ": relative error " << err;
}

ForwardBatch simple_batch(int T) {
  ForwardBatch b;
  for (int t = 0; t < T; ++t) {
    b.input_ids.push_back(t % 7);
    b.position_ids.push_back(t);
    b.slots.push_back(t);
    b.lm_head_indices.push_back(t);
  }
  b.cu_seqlens = {0, T};
  b.seq_lens = {T};
  b.max_blocks = (T + 15) / 16;
  for (int k = 0; k < b.max_blocks; ++k) b.block_tables.push_back(k);
  b.max_s = T;
  return b;
}

TEST(CudaOps, LinearWithAndWithoutBias) {
  Pair p;
  for (auto [T, in, out] : {std::tuple{1, 67, 131}, {1, 4096, 520}, {3, 2500, 96}, {8, 256, 300}, {5, 64, 33},
                             {37, 256, 300}, {129, 200, 77}}) {
    ForwardBatch b = simple_batch(T);
    p.cpu->begin_forward(b);
    p.gpu->begin_forward(b);
    auto x = p.make(p.random(T * in), {T, in});
    auto w = p.make(p.random(out * in, 0.1f), {out, in});
    auto bias = p.make(p.random(out), {out});
    auto y = p.poisoned({T, out});
    p.cpu->linear(x.c, w.c, &bias.c, y.c);
    p.gpu->linear(x.g, w.g, &bias.g, y.g);
    expect_close(p, y, "linear+bias");
    auto y2 = p.poisoned({T, out});
    p.cpu->linear(x.c, w.c, nullptr, y2.c);
    p.gpu->linear(x.g, w.g, nullptr, y2.g);
    expect_close(p, y2, "linear");
  }
}

// Widths that are a multiple of the 16-byte vector and one that is not (the
// kernels' element-at-a-time path).
class RowWidths : public ::testing::TestWithParam<int> {};

TEST_P(RowWidths, NormsEmbeddingActivations) {
  Pair p;
  const int T = 45, H = GetParam(), V = 50;
  ForwardBatch b = simple_batch(T);
  p.cpu->begin_forward(b);
  p.gpu->begin_forward(b);
  auto x = p.make(p.random(T * H, 3.0f), {T, H});
  auto w = p.make(p.random(H), {H});
  auto bias = p.make(p.random(H), {H});
  for (NormKind kind : {NormKind::LayerNorm, NormKind::RmsNorm})
    for (bool one_plus : {false, true}) {
      auto y = p.poisoned({T, H});
      const Tensor* bc = kind == NormKind::LayerNorm ? &bias.c : nullptr;
      const Tensor* bg = kind == NormKind::LayerNorm ? &bias.g : nullptr;
      p.cpu->norm(x.c, kind, w.c, bc, 1e-5f, one_plus, y.c);
      p.gpu->norm(x.g, kind, w.g, bg, 1e-5f, one_plus, y.g);
      expect_close(p, y, "norm");
    }
  // Residual add fused into the norm: h += delta; y = norm(h).
  auto hsum = p.make(p.random(T * H), {T, H});
  auto delta = p.make(p.random(T * H), {T, H});
  auto y2 = p.poisoned({T, H});
  p.cpu->add_norm(hsum.c, delta.c, NormKind::RmsNorm, w.c, nullptr, 1e-6f, false, y2.c);
  p.gpu->add_norm(hsum.g, delta.g, NormKind::RmsNorm, w.g, nullptr, 1e-6f, false, y2.g);
  expect_close(p, hsum, "add_norm residual");
  expect_close(p, y2, "add_norm output");
  auto table = p.make(p.random(V * H), {V, H});
  auto pos_table = p.make(p.random(T * H), {T, H});
  auto e = p.poisoned({T, H});
  p.cpu->embed(table.c, &pos_table.c, 1.5f, e.c);
  p.gpu->embed(table.g, &pos_table.g, 1.5f, e.g);
  expect_close(p, e, "embed");
  for (Activation act : {Activation::Gelu, Activation::GeluTanh, Activation::Silu, Activation::Relu}) {
    auto a = p.make(p.random(T * 2 * H), {T, 2 * H});
    auto out = p.poisoned({T, H});
    p.cpu->gated_activation(a.c, act, out.c);
    p.gpu->gated_activation(a.g, act, out.g);
    expect_close(p, out, "gated activation");
    p.cpu->activation(a.c, act);
    p.gpu->activation(a.g, act);
    expect_close(p, a, "activation");
  }
  auto s = p.make(p.random(T * H, 30.0f), {T, H});
  p.cpu->softcap(s.c, 20.0f);
  p.gpu->softcap(s.g, 20.0f);
  expect_close(p, s, "softcap");
  p.cpu->add(s.c, x.c);
  p.gpu->add(s.g, x.g);
  expect_close(p, s, "add");
}

INSTANTIATE_TEST_SUITE_P(CudaOps, RowWidths, ::testing::Values(200, 203, 5000));

// A long decode (context split), chunked prefills continuing earlier context
// (one spanning several tensor-core tiles), fresh prefills of under one tile and
// of several, and a run too short for the tensor-core path; blocks scattered.
struct AttentionCase {
  ForwardBatch batch;
  int num_blocks = 0;
};

AttentionCase attention_case(std::mt19937& rng, int block_size) {
  const std::vector<std::pair<int, int>> seqs = {{1100, 1}, {20, 37}, {0, 19}, {0, 150}, {300, 70}, {7, 5}};  // (cached, new)
  AttentionCase c;
  int total_blocks = 0;
  for (auto [cached, fresh] : seqs) total_blocks += (cached + fresh + block_size - 1) / block_size;
  c.num_blocks = total_blocks + 5;
  std::vector<int32_t> ids(c.num_blocks);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  ForwardBatch& b = c.batch;
  b.cu_seqlens.push_back(0);
  int next = 0, max_blocks = 0;
  std::vector<std::vector<int32_t>> tables;
  for (auto [cached, fresh] : seqs) {
    const int len = cached + fresh, nb = (len + block_size - 1) / block_size;
    tables.emplace_back(ids.begin() + next, ids.begin() + next + nb);
    next += nb;
    max_blocks = std::max(max_blocks, nb);
    for (int pos = cached; pos < len; ++pos) {
      b.input_ids.push_back(0);
      b.position_ids.push_back(pos);
      b.slots.push_back(tables.back()[pos / block_size] * block_size + pos % block_size);
      b.lm_head_indices.push_back(b.num_tokens() - 1);
    }
    b.cu_seqlens.push_back(b.num_tokens());
    b.seq_lens.push_back(len);
    b.max_s = std::max(b.max_s, len);
  }
  b.max_blocks = max_blocks;
  for (auto& t : tables) {
    t.resize(max_blocks, 0);
    b.block_tables.insert(b.block_tables.end(), t.begin(), t.end());
  }
  return c;
}

TEST(CudaOps, PagedAttentionMixedBatch) {
  Pair p;
  const int bs = 16;
  struct Shape {
    int hq, hkv, d, window;
    float softcap;
  };
  // Head dims of every CUDA-core decode layout: one position per warp (16 in bf16, 80,
  // 256) and several, with 4 (32 in bf16), 8 (64; 32 in fp32) or 16 lanes (128; 64 in
  // fp32) each; in 16-bit types the tensor-core decode for groups of 1-8 query heads
  // per KV head at head dims 64, 128 and 256 (group 1, 4, 7, 4 and 2 with window and
  // softcap, 8).
  for (Shape sh : {Shape{4, 2, 16, 0, 0.0f}, Shape{8, 8, 64, 0, 0.0f}, Shape{6, 2, 80, 300, 0.0f},
                   Shape{8, 2, 128, 0, 0.0f}, Shape{4, 1, 256, 64, 30.0f}, Shape{7, 1, 128, 0, 0.0f},
                   Shape{8, 2, 32, 40, 50.0f}, Shape{8, 4, 64, 40, 50.0f}, Shape{16, 2, 128, 300, 30.0f}}) {
    SCOPED_TRACE("hq=" + std::to_string(sh.hq) + " hkv=" + std::to_string(sh.hkv) + " d=" + std::to_string(sh.d));
    AttentionCase c = attention_case(p.rng, bs);
    const int T = c.batch.num_tokens();
    const int64_t width = static_cast<int64_t>(sh.hq + 2 * sh.hkv) * sh.d;
    const int64_t slots = static_cast<int64_t>(c.num_blocks) * bs;
    auto k = p.make(p.random(slots * sh.hkv * sh.d), {slots, sh.hkv, sh.d});
    auto v = p.make(p.random(slots * sh.hkv * sh.d), {slots, sh.hkv, sh.d});
    KvLayer kc{k.c, v.c}, kg{k.g, v.g};
    auto qkv = p.make(p.random(T * width), {T, width});
    auto out = p.poisoned({T, static_cast<int64_t>(sh.hq) * sh.d});
    AttentionParams ap{sh.hq, sh.hkv, sh.d, 1.0f / std::sqrt(static_cast<float>(sh.d)), sh.softcap, sh.window};
    p.cpu->begin_forward(c.batch);
    p.gpu->begin_forward(c.batch);
    std::vector<float> inv(sh.d / 4);
    for (size_t i = 0; i < inv.size(); ++i) inv[i] = std::pow(10000.0f, -2.0f * i / (sh.d / 2));
    auto qkv2 = p.make(p.random(T * width), {T, width});
    p.cpu->rope(qkv2.c, sh.hq, sh.hkv, sh.d, sh.d / 2, inv);
    p.gpu->rope(qkv2.g, sh.hq, sh.hkv, sh.d, sh.d / 2, inv);
    expect_close(p, qkv2, "rope (partial)");
    ap.rope_inv_freq = &inv;  // fused RoPE + cache write on the GPU
    ap.rotary_dim = sh.d / 2;
    p.cpu->attention(qkv.c, kc, bs, ap, out.c);
    p.gpu->attention(qkv.g, kg, bs, ap, out.g);
    expect_close(p, out, "attention");
    expect_close(p, qkv, "rotated q/k");
    expect_close(p, k, "K cache write");
    expect_close(p, v, "V cache write");
  }
}

// Every context position of the case's sequences as new tokens (fills their caches).
ForwardBatch fill_batch(const AttentionCase& c, int block_size) {
  const ForwardBatch& m = c.batch;
  ForwardBatch b;
  b.cu_seqlens.push_back(0);
  for (int s = 0; s < m.num_seqs(); ++s) {
    for (int pos = 0; pos < m.seq_lens[s]; ++pos) {
      b.input_ids.push_back(0);
      b.position_ids.push_back(pos);
      b.slots.push_back(m.block_tables[s * m.max_blocks + pos / block_size] * block_size + pos % block_size);
      b.lm_head_indices.push_back(b.num_tokens() - 1);
    }
    b.cu_seqlens.push_back(b.num_tokens());
  }
  b.seq_lens = m.seq_lens;
  b.block_tables = m.block_tables;
  b.max_blocks = m.max_blocks;
  b.max_s = m.max_s;
  return b;
}

// The attention kernels' e4m3 reading gives every code's exact value in half and
// bfloat16, as runtime/fp8_e4m3.h decodes it (the two NaN codes as NaN).
TEST(CudaOps, Fp8CodesReadExactlyByTheAttentionKernels) {
  std::vector<uint8_t> codes(256);
  std::iota(codes.begin(), codes.end(), 0);
  uint8_t* dev_codes = nullptr;
  uint16_t* dev_out = nullptr;
  ASSERT_EQ(cudaMalloc(&dev_codes, 256), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dev_out, 512), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(dev_codes, codes.data(), 256, cudaMemcpyHostToDevice), cudaSuccess);
  for (auto [dt, name] : {std::pair{kernels::Dt::BF16, "bfloat16"}, std::pair{kernels::Dt::F16, "half"}}) {
    SCOPED_TRACE(name);
    kernels::fp8_e4m3_to(dt, dev_codes, 256, dev_out, nullptr);
    std::vector<uint16_t> got(256);
    ASSERT_EQ(cudaMemcpy(got.data(), dev_out, 512, cudaMemcpyDeviceToHost), cudaSuccess);
    int checked = 0;
    for (int c = 0; c < 256; ++c) {
      // Both 16-bit formats hold every e4m3 value, so the float's bits say what to expect.
      const float want = fp8_e4m3_decode(static_cast<uint8_t>(c));
      float have;
      if (dt == kernels::Dt::BF16) {
        const uint32_t bits = static_cast<uint32_t>(got[c]) << 16;
        std::memcpy(&have, &bits, 4);
      } else {
        __half_raw raw;
        raw.x = got[c];
        have = __half2float(__half(raw));
      }
      if (std::isnan(want)) {
        EXPECT_TRUE(std::isnan(have)) << "code " << c;  // a NaN's sign is not kept through bfloat16
      } else {
        EXPECT_EQ(std::signbit(have), std::signbit(want)) << "code " << c;
        EXPECT_EQ(have, want) << "code " << c;
      }
      ++checked;
    }
    EXPECT_EQ(checked, 256);
  }
  cudaFree(dev_codes);
  cudaFree(dev_out);
}

// --kv-cache-dtype fp8: the CUDA write stores the very e4m3 codes the CPU
// emulation stores (same inputs, no RoPE), with per-layer scales, and attention
// over such a cache (prefills and decodes, GQA, windows, softcaps, split
// contexts) matches the CPU's.
TEST(CudaOps, Fp8KvCacheMatchesTheCpuEmulation) {
  Pair p;
  const int bs = 16;
  struct Shape {
    int hq, hkv, d, window;
    float softcap;
  };
  for (Shape sh : {Shape{8, 2, 128, 0, 0.0f}, Shape{4, 1, 256, 64, 30.0f}, Shape{8, 8, 64, 0, 0.0f},
                   Shape{6, 2, 80, 300, 0.0f}, Shape{4, 2, 16, 0, 0.0f}}) {
    SCOPED_TRACE("hq=" + std::to_string(sh.hq) + " hkv=" + std::to_string(sh.hkv) + " d=" + std::to_string(sh.d));
    AttentionCase c = attention_case(p.rng, bs);
    const int64_t width = static_cast<int64_t>(sh.hq + 2 * sh.hkv) * sh.d;
    const int64_t slots = static_cast<int64_t>(c.num_blocks) * bs;
    const std::vector<int64_t> shape = {slots, sh.hkv, sh.d};
    // Scales that put the values across e4m3's normal and subnormal range.
    KvLayer kc{p.cpu->empty_as(shape, DType::F8E4M3), p.cpu->empty_as(shape, DType::F8E4M3), 0.02f, 0.5f};
    KvLayer kg{p.gpu->empty_as(shape, DType::F8E4M3), p.gpu->empty_as(shape, DType::F8E4M3), 0.02f, 0.5f};
    AttentionParams ap{sh.hq, sh.hkv, sh.d, 1.0f / std::sqrt(static_cast<float>(sh.d)), sh.softcap, sh.window};

    const ForwardBatch fill = fill_batch(c, bs);
    auto qkv = p.make(p.random(fill.num_tokens() * width), {fill.num_tokens(), width});
    auto out = p.poisoned({fill.num_tokens(), static_cast<int64_t>(sh.hq) * sh.d});
    p.cpu->begin_forward(fill);
    p.gpu->begin_forward(fill);
    p.cpu->attention(qkv.c, kc, bs, ap, out.c);
    p.gpu->attention(qkv.g, kg, bs, ap, out.g);
    expect_close(p, out, "attention while filling");
    for (auto [cpu_t, gpu_t, what] : {std::tuple{&kc.k, &kg.k, "K"}, std::tuple{&kc.v, &kg.v, "V"}}) {
      const auto want = p.cpu->download_bytes(*cpu_t), got = p.gpu->download_bytes(*gpu_t);
      ASSERT_EQ(want.size(), got.size());
      size_t differ = 0, nonzero = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        differ += want[i] != got[i];
        nonzero += (want[i] & 0x7f) != 0;
      }
      EXPECT_EQ(differ, 0u) << what << " codes differ from the CPU emulation";
      EXPECT_GT(nonzero, want.size() / 2) << what << " cache mostly empty";
    }

    // The mixed batch (its cached contexts now hold codes), RoPE fused into the write.
    std::vector<float> inv(sh.d / 4);
    for (size_t i = 0; i < inv.size(); ++i) inv[i] = std::pow(10000.0f, -2.0f * i / (sh.d / 2));
    ap.rope_inv_freq = &inv;
    ap.rotary_dim = sh.d / 2;
    const int T = c.batch.num_tokens();
    auto qkv2 = p.make(p.random(T * width), {T, width});
    auto out2 = p.poisoned({T, static_cast<int64_t>(sh.hq) * sh.d});
    p.cpu->begin_forward(c.batch);
    p.gpu->begin_forward(c.batch);
    p.cpu->attention(qkv2.c, kc, bs, ap, out2.c);
    p.gpu->attention(qkv2.g, kg, bs, ap, out2.g);
    // RoPE on the GPU rounds differently from the CPU's by an ulp, which can move
    // a new key across an e4m3 rounding boundary (one element off by a 6-12%
    // step), so this bar is looser than the exact-input one above.
    expect_close(p, out2, "attention over the FP8 cache", std::max(tolerance(), 3e-3));
  }
}

class LoraShapes : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(LoraShapes, SegmentsMixedRanks) {
  Pair p;
  const int T = 41, ldy = 160, out = 64, offset = 48;
  const auto [in, max_extra_rank] = GetParam();
  (void)max_extra_rank;
  ForwardBatch b = simple_batch(T);
  p.cpu->begin_forward(b);
  p.gpu->begin_forward(b);
  auto x = p.make(p.random(T * in), {T, in});
  std::vector<Pair::Both> as, bs;
  std::vector<LoraPair> cpu_pairs, gpu_pairs;
  const std::vector<int> ranks = {1, 8, 16, 3};
  for (int r : ranks) {
    as.push_back(p.make(p.random(r * in, 0.2f), {r, in}));
    bs.push_back(p.make(p.random(out * r, 0.2f), {out, r}));
  }
  for (size_t i = 0; i < ranks.size(); ++i) {
    cpu_pairs.push_back({as[i].c, bs[i].c, 0.5f + i, ranks[i]});
    gpu_pairs.push_back({as[i].g, bs[i].g, 0.5f + i, ranks[i]});
  }
  // Adapter 2 is absent from this projection; segment of -1 is base-only.
  std::vector<const LoraPair*> pc = {&cpu_pairs[0], &cpu_pairs[1], nullptr, &cpu_pairs[3]};
  std::vector<const LoraPair*> pg = {&gpu_pairs[0], &gpu_pairs[1], nullptr, &gpu_pairs[3]};
  std::vector<AdapterSegment> segs = {{0, 5, 1}, {5, 6, -1}, {6, 20, 0}, {20, 23, 2}, {23, 41, 3}};
  auto y = p.make(p.random(T * ldy), {T, ldy});
  p.cpu->lora(x.c, segs, LoraCall{pc, offset}, y.c);
  p.gpu->lora(x.g, segs, LoraCall{pg, offset}, y.g);
  expect_close(p, y, "lora");
}
INSTANTIATE_TEST_SUITE_P(CudaOps, LoraShapes, ::testing::Values(std::tuple{96, 0}, std::tuple{3000, 0}));

// Decode-shaped batches through linear_lora (shrinks beside the GEMM, expands
// after it): one-token segments, more of them than one launch holds, ranks up to
// the largest supported, outputs no multiple of any tile, two calls into
// overlapping columns of one fused output.
class LoraDecode : public ::testing::TestWithParam<std::tuple<int, int, int>> {};  // in, out, largest rank

TEST_P(LoraDecode, ManyOneTokenSegments) {
  Pair p;
  const auto [in, out, max_rank] = GetParam();
  const int T = 100, wout = out + 40;
  ForwardBatch b = simple_batch(T);
  p.cpu->begin_forward(b);
  p.gpu->begin_forward(b);
  auto x = p.make(p.random(T * in), {T, in});
  auto w = p.make(p.random(wout * in, 0.1f), {wout, in});
  const std::vector<int> ranks = {max_rank, 3, 16, std::min(64, max_rank), 8};
  std::vector<Pair::Both> keep;
  std::vector<LoraPair> cpu_pairs, gpu_pairs;
  for (int call = 0; call < 2; ++call)
    for (size_t i = 0; i < ranks.size(); ++i) {
      const int r = ranks[i];
      keep.push_back(p.make(p.random(r * in, 0.2f), {r, in}));
      keep.push_back(p.make(p.random(out * r, 0.2f), {out, r}));
      const Pair::Both &a = keep[keep.size() - 2], &bb = keep.back();
      cpu_pairs.push_back({a.c, bb.c, 0.5f + i, r});
      gpu_pairs.push_back({a.g, bb.g, 0.5f + i, r});
    }
  std::vector<LoraCall> cpu_calls(2), gpu_calls(2);
  for (int call = 0; call < 2; ++call) {
    cpu_calls[call].col_offset = gpu_calls[call].col_offset = call * 40;
    for (size_t i = 0; i < ranks.size(); ++i) {
      // Adapter 4 has no LoRA on the second call's columns.
      const bool absent = call == 1 && i == 4;
      cpu_calls[call].pairs.push_back(absent ? nullptr : &cpu_pairs[call * ranks.size() + i]);
      gpu_calls[call].pairs.push_back(absent ? nullptr : &gpu_pairs[call * ranks.size() + i]);
    }
  }
  std::vector<AdapterSegment> segs;
  for (int t = 0; t < T - 4; ++t) segs.push_back({t, t + 1, t % 11 == 0 ? -1 : t % 5});
  segs.push_back({T - 4, T, 1});
  auto y = p.poisoned({T, wout});
  p.cpu->linear_lora(x.c, w.c, nullptr, segs, cpu_calls, y.c);
  p.gpu->linear_lora(x.g, w.g, nullptr, segs, gpu_calls, y.g);
  expect_close(p, y, "linear_lora");
}
INSTANTIATE_TEST_SUITE_P(CudaOps, LoraDecode,
                         ::testing::Values(std::tuple{256, 1000, 128}, std::tuple{4104, 300, 16},
                                           std::tuple{136, 77, 512}));

// A decode graph recorded with one mix of adapters replays with another: the
// LoRA work is data laid out by prepare_lora, rewritten before each forward.
TEST(CudaOps, RecordedLoraGraphServesAnotherAdapterMix) {
  Pair p;
  const int T = 24, in = 512, out = 384, adapters = 6;
  ForwardBatch b = simple_batch(T);
  auto x = p.make(p.random(T * in), {T, in});
  auto w = p.make(p.random(out * in, 0.1f), {out, in});
  std::vector<Pair::Both> keep;
  std::vector<LoraPair> cpu_pairs, gpu_pairs;
  for (int i = 0; i < adapters; ++i) {
    const int r = i % 2 ? 16 : 8;  // one rank bucket (16) for every mix below
    keep.push_back(p.make(p.random(r * in, 0.2f), {r, in}));
    keep.push_back(p.make(p.random(out * r, 0.2f), {out, r}));
    cpu_pairs.push_back({keep[keep.size() - 2].c, keep.back().c, 0.5f + i, r});
    gpu_pairs.push_back({keep[keep.size() - 2].g, keep.back().g, 0.5f + i, r});
  }
  // Mixes of the same shape: segments over the tokens, adapter -1 = base model.
  const std::vector<std::vector<AdapterSegment>> mixes = {
      {{0, 8, 0}, {8, 9, -1}, {9, 24, 1}},
      {{0, 1, 2}, {1, 2, 3}, {2, 12, 4}, {12, 24, 5}},
      {{0, 24, 3}},
  };
  auto y = p.poisoned({T, out});
  for (int round = 0; round < 3; ++round)  // 0: eager, 1: recorded, 2: replayed
    for (const auto& segs : mixes) {
      std::vector<const LoraPair*> pc(adapters), pg(adapters);
      for (int i = 0; i < adapters; ++i) {
        pc[i] = &cpu_pairs[i];
        pg[i] = &gpu_pairs[i];
      }
      std::vector<LoraCall> cpu_calls = {{pc, 0, 0}}, gpu_calls = {{pg, 0, 0}};
      p.cpu->begin_forward(b);
      p.gpu->begin_forward(b);
      LoraGroup group{&segs, T, {&gpu_calls[0]}};
      p.gpu->prepare_lora({group});
      p.cpu->linear_lora(x.c, w.c, nullptr, segs, cpu_calls, y.c);
      p.gpu->run_graph("lora-mix", [&] { p.gpu->linear_lora(x.g, w.g, nullptr, segs, gpu_calls, y.g); });
      expect_close(p, y, ("lora graph round " + std::to_string(round)).c_str());
    }
}

TEST(CudaOps, ArgmaxAndLogprob) {
  Pair p;
  for (int vocab : {7, 1000, 128256}) {
    auto logits = p.make(p.random(3 * vocab, 4.0f), {3, vocab});
    std::vector<int32_t> ci, gi;
    std::vector<float> cl, gl;
    p.cpu->argmax(logits.c, ci, cl);
    p.gpu->argmax(logits.g, gi, gl);
    EXPECT_EQ(ci, gi) << "vocab " << vocab;
    for (size_t r = 0; r < cl.size(); ++r) EXPECT_NEAR(cl[r], gl[r], 1e-3) << "vocab " << vocab;
    // Constrained rows: a sparse mask, a mask shorter than the vocabulary, and an unmasked row between them.
    std::vector<uint32_t> sparse((vocab + 31) / 32, 0), shorter(std::max(1, vocab / 64), 0xffffffffu);
    for (int t = 1; t < vocab; t += 5) sparse[t / 32] |= 1u << (t % 32);
    const std::vector<AllowedTokens> allowed = {{sparse.data(), sparse.size()}, {}, {shorter.data(), shorter.size()}};
    p.cpu->argmax(logits.c, ci, cl, allowed);
    p.gpu->argmax(logits.g, gi, gl, allowed);
    EXPECT_EQ(ci, gi) << "masked, vocab " << vocab;
    for (size_t r = 0; r < cl.size(); ++r) {
      EXPECT_NEAR(cl[r], gl[r], 1e-3) << "masked, vocab " << vocab;
      EXPECT_TRUE(allowed[r].allows(gi[r])) << "row " << r << " chose outside its mask";
    }
  }
}

// The device's token choice against the host implementation (sampling.cpp) it
// mirrors: same ids (the draws use the same uniforms) and log-probs, for every
// warper and penalty, on plain logits and on logits full of ties.
TEST(CudaOps, ChooseTokensLikeTheHost) {
  Pair p;
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int vocab : {9, 1000, 50257, 128256}) {
    for (bool ties : {false, true}) {
      std::vector<RowChoice> rows;
      auto add = [&](RowChoice r) { rows.push_back(std::move(r)); };
      RowChoice prompt;
      prompt.prompt_target = vocab / 3;
      add(prompt);
      add(RowChoice{});  // plain argmax
      for (double temperature : {1.0, 0.7, 1.9})
        for (int top_k : {0, 1, 5, 50, vocab - 1})
          for (double top_p : {1.0, 0.05, 0.5, 0.95}) {
            RowChoice r;
            r.sample = true;
            r.temperature = temperature;
            r.top_k = top_k;
            r.top_p = top_p;
            r.uniform = unit(p.rng);
            add(r);
          }
      for (double typical : {0.2, 0.7, 0.95}) {
        RowChoice r;
        r.sample = true;
        r.typical_p = typical;
        r.temperature = 0.9;
        r.top_k = typical > 0.9 ? 30 : 0;
        r.uniform = unit(p.rng);
        add(r);
      }
      for (bool sample : {false, true}) {  // penalties on a few context/generated tokens
        RowChoice r;
        r.sample = sample;
        r.uniform = unit(p.rng);
        r.top_p = sample ? 0.9 : 1.0;
        r.repetition_penalty = 1.3;
        r.frequency_penalty = 0.4;
        r.presence_penalty = -0.2;
        for (int t = 0; t < std::min(vocab, 40); t += 3) r.penalties.push_back({t, t % 4, t % 2});
        add(r);
      }
      // Constrained decoding: a token mask (shorter than the vocabulary in one row,
      // as when the model pads its vocabulary), greedy and sampled, with penalties.
      std::vector<std::vector<uint32_t>> masks;
      masks.reserve(4);
      for (int m = 0; m < 4; ++m) {
        const size_t words = (vocab + 31) / 32 - (m == 3 && vocab > 64 ? 1 : 0);
        masks.emplace_back(words, 0u);
        for (int t = m; t < vocab; t += 7 + m)
          if (static_cast<size_t>(t / 32) < words) masks.back()[t / 32] |= 1u << (t % 32);
        RowChoice r;
        r.sample = m % 2 == 1;
        r.uniform = unit(p.rng);
        r.top_k = m == 1 ? 5 : 0;
        r.temperature = m == 1 ? 0.8 : 1.0;
        if (m == 2) r.penalties.push_back({2, 1, 1}), r.repetition_penalty = 1.2;
        r.allowed = {masks.back().data(), words};
        add(r);
      }
      const int n = static_cast<int>(rows.size());
      // Alternatives (top_n_tokens): none, a few, the most (more than a tiny vocabulary has).
      for (int r = 0; r < n; ++r) rows[r].top_n = r % 3 == 0 ? 0 : r % 3 == 1 ? 5 : kMaxTopTokens;
      std::vector<float> host = p.random(static_cast<int64_t>(n) * vocab, 3.0f);
      if (ties)
        for (float& x : host) x = std::round(x * 2.0f) / 2.0f;
      // The top tokens of every row sit at the same few values in the tie case.
      auto logits = p.make(host, {n, vocab});
      std::vector<TokenChoice> got;
      ASSERT_TRUE(p.gpu->choose_tokens(logits.g, rows, got));
      ASSERT_EQ(static_cast<int>(got.size()), n);
      for (int r = 0; r < n; ++r) {
        const TokenChoice want = choose_token(std::span<const float>(host.data() + static_cast<int64_t>(r) * vocab, vocab), rows[r]);
        SCOPED_TRACE("vocab " + std::to_string(vocab) + (ties ? " ties" : "") + " row " + std::to_string(r) + " top_k " +
                     std::to_string(rows[r].top_k) + " top_p " + std::to_string(rows[r].top_p) + " T " +
                     std::to_string(rows[r].temperature) + " typical " + std::to_string(rows[r].typical_p));
        EXPECT_EQ(got[r].id, want.id);
        EXPECT_NEAR(got[r].logprob, want.logprob, 1e-4);
        EXPECT_TRUE(rows[r].allowed.allows(got[r].id)) << "outside the mask";
        ASSERT_EQ(got[r].top.size(), want.top.size());
        for (size_t k = 0; k < want.top.size(); ++k) {
          EXPECT_EQ(got[r].top[k].id, want.top[k].id) << "alternative " << k;
          EXPECT_NEAR(got[r].top[k].logprob, want.top[k].logprob, 1e-4) << "alternative " << k;
        }
      }
    }
  }
}

TEST(CudaOps, GatherRows) {
  Pair p;
  const int T = 30, H = 70;
  ForwardBatch b = simple_batch(T);
  b.lm_head_indices = {3, 4, 17, 29};
  p.cpu->begin_forward(b);
  p.gpu->begin_forward(b);
  auto x = p.make(p.random(T * H), {T, H});
  auto y = p.poisoned({4, H});
  p.cpu->gather_rows(x.c, y.c);
  p.gpu->gather_rows(x.g, y.g);
  expect_close(p, y, "gather", 1e-7);
}

}  // namespace
}  // namespace lorax
