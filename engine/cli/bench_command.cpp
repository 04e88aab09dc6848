// `lorax-engine bench`: offline throughput on real or dummy weights through the
// real scheduler. Decode tokens/s per batch size with 0 or N distinct random
// rank-r adapters (on the fused qkv, o, gate/up and down projections of every
// layer), and prefill tokens/s for one long prompt. On CUDA it also reports
// batch-1 decode against the HBM roofline (weight + KV bytes per step over the
// measured copy bandwidth) and prefill against the measured bf16 GEMM peak.
#include <chrono>
#include <fstream>
#include <cstdio>
#include <iostream>
#include <random>
#include <sstream>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/engine_setup.h"
#include "structured/json_schema.h"

#ifdef LORAX_HAVE_CUDA
#include "runtime/cuda/cuda_probe.h"
#endif

namespace lorax::cli {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<int> int_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(std::stoi(item));
  return out;
}

std::shared_ptr<AdapterWeights> random_adapter(const ModelSpec& spec, Backend& be, int rank, uint64_t seed) {
  auto a = std::make_shared<AdapterWeights>();
  a->id = "bench-" + std::to_string(seed);
  a->max_rank = rank;
  a->layers.resize(spec.num_layers);
  const int64_t h = spec.hidden_size, mlp = spec.gated_mlp ? 2 * spec.intermediate_size : spec.intermediate_size;
  const std::vector<std::tuple<Projection, int64_t, int64_t>> shapes = {
      {Projection::Qkv, h, spec.qkv_size()}, {Projection::O, spec.q_size(), h},
      {Projection::Up, h, mlp}, {Projection::Down, spec.intermediate_size, h}};
  uint64_t n = 0;
  for (int l = 0; l < spec.num_layers; ++l)
    for (auto [proj, in, out] : shapes) {
      LoraPair p;
      p.rank = rank;
      p.scale = 2.0f;
      p.a = be.empty({rank, in});
      p.b = be.empty({out, rank});
      be.fill_random(p.a, seed * 7919 + n++, 0.01f);
      be.fill_random(p.b, seed * 7919 + n++, 0.01f);
      a->layers[l][static_cast<int>(proj)].push_back({0, p});
    }
  return a;
}

double weight_bytes(const Model& model) {
  const ModelWeights& w = model.weights();
  double total = static_cast<double>(w.lm_head.bytes()) + w.final_norm_w.bytes() + w.final_norm_b.bytes();
  for (const LayerWeights& l : w.layers)
    for (const Tensor* t : {&l.attn_norm_w, &l.attn_norm_b, &l.qkv_w, &l.qkv_b, &l.o_w, &l.o_b, &l.post_attn_norm_w,
                            &l.mlp_norm_w, &l.mlp_norm_b, &l.up_w, &l.up_b, &l.down_w, &l.down_b, &l.post_mlp_norm_w})
      total += t->bytes();
  return total;
}

struct DecodeResult {
  double tokens_per_s = 0, step_ms = 0;
  double mask_ms = 0;  // per step, constrained runs: host time making masks ready
};

// `schema` (may be null): every request is constrained to it (structured output).
// `detokenize`: the engine has the setup's tokenizer and detokenizes every token
// as a server does (the free reference of a constrained run does too).
DecodeResult bench_decode(EngineSetup& s, int batch, int adapters, int rank, int prompt_len, int steps,
                          const std::shared_ptr<const structured::Schema>& schema = nullptr, bool detokenize = false) {
  const ModelSpec& spec = s.model->spec();
  std::vector<std::shared_ptr<const AdapterWeights>> pool;
  for (int i = 0; i < adapters; ++i) pool.push_back(random_adapter(spec, *s.backend, rank, 100 + i));
  const int warmup = 3;
  const int per_seq = prompt_len + warmup + steps + 2;
  KvCache kv(*s.backend, spec.num_layers, batch * ((per_seq + 15) / 16) + 1, 16, spec.num_kv_heads, spec.head_dim,
             s.kv->dtype());  // --kv-cache-dtype
  EngineConfig cfg;
  cfg.max_batch_prefill_tokens = std::max(prompt_len * batch, 1);
  cfg.max_running = batch;
  Engine engine(*s.model, kv, schema || detokenize ? s.tokenizer : nullptr, cfg);
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> tok(0, spec.vocab_size - 1);
  std::vector<int> generated(batch, 0);
  for (int b = 0; b < batch; ++b) {
    GenerationRequest req;
    for (int i = 0; i < prompt_len; ++i) req.prompt_ids.push_back(tok(rng));
    req.stopping.max_new_tokens = warmup + steps + 2;
    req.stopping.ignore_eos_token = true;
    req.schema = schema;
    if (!pool.empty()) {
      req.adapter = pool[b % pool.size()];
      req.adapter_id = req.adapter->id;
    }
    req.on_token = [&generated, b](const GeneratedToken&) { ++generated[b]; };
    engine.submit(std::move(req));
  }
  auto all_at_least = [&](int n) {
    for (int g : generated)
      if (g < n) return false;
    return true;
  };
  while (!all_at_least(warmup)) engine.step();
  const double mask_before = engine.stats().mask_seconds;
  const auto t0 = Clock::now();
  for (int i = 0; i < steps; ++i) engine.step();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const double mask_secs = engine.stats().mask_seconds - mask_before;
  engine.run_until_idle();
  return {batch * steps / secs, 1e3 * secs / steps, 1e3 * mask_secs / steps};
}

double bench_prefill(EngineSetup& s, int prompt_len, int reps) {
  const ModelSpec& spec = s.model->spec();
  KvCache kv(*s.backend, spec.num_layers, (prompt_len + 32) / 16 + 2, 16, spec.num_kv_heads, spec.head_dim,
             s.kv->dtype());  // --kv-cache-dtype
  EngineConfig cfg;
  cfg.max_batch_prefill_tokens = prompt_len;
  Engine engine(*s.model, kv, nullptr, cfg);
  std::mt19937 rng(99);
  std::uniform_int_distribution<int32_t> tok(0, spec.vocab_size - 1);
  std::vector<double> times;
  for (int r = 0; r < reps + 1; ++r) {
    GenerationRequest req;
    for (int i = 0; i < prompt_len; ++i) req.prompt_ids.push_back(tok(rng));
    req.stopping.max_new_tokens = 1;
    req.stopping.ignore_eos_token = true;
    engine.submit(std::move(req));
    const auto t0 = Clock::now();
    engine.step();  // the whole prompt in one forward
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    engine.run_until_idle();
    if (r > 0) times.push_back(secs);  // first run warms up
  }
  std::sort(times.begin(), times.end());
  return prompt_len / times[times.size() / 2];
}

int run_bench(const std::vector<std::string>& argv) {
  std::set<std::string> value_flags = {"model", "batch-sizes", "adapters", "adapter-rank", "prompt-len", "decode-steps",
                                       "prefill-len", "label", "json-schema", "tokenizer"};
  for (auto& f : engine_value_flags()) value_flags.insert(f);
  Args args(argv, value_flags, {"json", "no-tokenizer"});
  EngineSetup s = EngineSetup::create(args, {GenerateBody{}});
  const ModelSpec& spec = s.model->spec();
  const std::string label = args.get_or("label", args.require("model"));
  const int rank = static_cast<int>(args.get_int("adapter-rank", 16));
  const int prompt_len = static_cast<int>(args.get_int("prompt-len", 128));
  const int steps = static_cast<int>(args.get_int("decode-steps", 32));
  const int prefill_len = static_cast<int>(args.get_int("prefill-len", 2048));
  // --json-schema FILE: the decode runs again with every request constrained to it
  // (the tokenizer from --tokenizer DIR, or the model's), beside the free run;
  // both detokenize every token, as a server does.
  std::shared_ptr<const structured::Schema> schema;
  if (args.has("json-schema")) {
    std::ifstream in(args.require("json-schema"));
    if (!in) throw UsageError("--json-schema: cannot read " + args.require("json-schema"));
    schema = structured::Schema::compile(nlohmann::json::parse(in));
    if (args.has("tokenizer")) s.tokenizer = Tokenizer::load(args.require("tokenizer"));
    if (!s.tokenizer) throw UsageError("--json-schema needs a tokenizer (--tokenizer DIR)");
  }
  const double wbytes = weight_bytes(*s.model);
  double bw = 0, peak = 0;
#ifdef LORAX_HAVE_CUDA
  if (s.backend->name() == "cuda") {
    bw = measure_copy_bandwidth_gbs();
    peak = measure_bf16_gemm_tflops();
    std::printf("# %s: copy bandwidth %.0f GB/s, bf16 GEMM %.0f TFLOP/s\n", cuda_device_name(), bw, peak);
  }
#endif
  std::printf("# %s: %.2f GB of weights (%s)\n", label.c_str(), wbytes / 1e9, dtype_name(s.backend->compute_dtype()).c_str());
  for (int adapters : int_list(args.get_or("adapters", "0")))
    for (int batch : int_list(args.get_or("batch-sizes", "1,8,64"))) {
      DecodeResult r = bench_decode(s, batch, adapters, rank, prompt_len, steps, nullptr, schema != nullptr);
      nlohmann::json j = {{"bench", "decode"}, {"model", label}, {"batch", batch}, {"adapters", adapters},
                          {"rank", rank}, {"tokens_per_s", r.tokens_per_s}, {"step_ms", r.step_ms},
                          {"prompt_len", prompt_len}, {"kv_cache_dtype", dtype_name(s.kv->dtype())}};
      if (bw > 0 && batch == 1) {
        const double kv_bytes = 2.0 * spec.num_layers * spec.kv_size() * dtype_size(s.kv->dtype()) *
                                (prompt_len + 3 + steps / 2);
        const double roofline_ms = (wbytes + kv_bytes) / (bw * 1e9) * 1e3;
        j["roofline_ms"] = roofline_ms;
        j["pct_of_hbm_roofline"] = 100.0 * roofline_ms / r.step_ms;
      }
      std::cout << j.dump() << std::endl;
      if (schema) {  // the free run above detokenized too, as this one does
        const DecodeResult c = bench_decode(s, batch, adapters, rank, prompt_len, steps, schema, true);
        j["constrained"] = true;
        j["tokens_per_s"] = c.tokens_per_s;
        j["step_ms"] = c.step_ms;
        j["vs_free"] = c.tokens_per_s / r.tokens_per_s;
        j["mask_ms_per_step"] = c.mask_ms;
        j.erase("roofline_ms");
        j.erase("pct_of_hbm_roofline");
        std::cout << j.dump() << std::endl;
      }
    }
  if (prefill_len > 0) {
    const double tps = bench_prefill(s, prefill_len, 3);
    nlohmann::json j = {{"bench", "prefill"}, {"model", label}, {"prompt_len", prefill_len}, {"tokens_per_s", tps},
                        {"kv_cache_dtype", dtype_name(s.kv->dtype())}};
    if (peak > 0) {
      const double flops_per_token = 2.0 * wbytes / dtype_size(s.backend->compute_dtype()) +
                                     2.0 * spec.num_layers * spec.q_size() * prefill_len;  // QK^T and PV, causal half
      j["tflops"] = flops_per_token * tps / 1e12;
      j["pct_of_gemm_peak"] = 100.0 * flops_per_token * tps / 1e12 / peak;
    }
    std::cout << j.dump() << std::endl;
  }
  return 0;
}

CommandRegistration reg("bench", "offline decode/prefill throughput (dummy or real weights)", &run_bench);

}  // namespace
}  // namespace lorax::cli
