#include "cli/engine_setup.h"

#include "adapters/url_policy.h"
#include "cli/model_fetch.h"

#include <filesystem>

#ifdef LORAX_HAVE_CUDA
#include "runtime/cuda/cuda_backend.h"
#endif

namespace lorax::cli {

const std::set<std::string>& engine_value_flags() {
  static const std::set<std::string> flags = {
      "device", "dtype", "threads", "load-format", "block-size", "kv-cache-tokens", "max-input-length",
      "max-total-tokens", "max-batch-total-tokens", "max-batch-prefill-tokens", "max-active-adapters",
      "max-loaded-adapters", "adapter-dir", "adapter-cycle-time-s", "num-shard", "max-running",
      "gpu-memory-utilization", "adapter-root", "adapter-cache-dir", "adapter-max-bytes", "max-host-adapters",
      "max-host-adapter-bytes", "hub-endpoint", "s3-endpoint", "adapter-url-allow", "model-cache-dir",
      "model-revision", "adapter-registry", "prefix-caching", "kv-cache-dtype", "max-schema-bytes"};
  return flags;
}

// auto: the compute dtype; fp8: e4m3 with the checkpoint's per-layer scales
// (1.0 without them), on every backend that can attend over it.
DType kv_cache_dtype(const std::string& name, const Backend& backend) {
  if (name == "auto") return backend.compute_dtype();
  if (name != "fp8" && name != "fp8_e4m3")
    throw UsageError("--kv-cache-dtype must be auto, fp8 or fp8_e4m3, not '" + name + "'");
  if (!backend.supports_fp8_kv())
    throw UsageError("--kv-cache-dtype fp8: the " + backend.name() + " backend cannot attend over an FP8 KV cache yet");
  return DType::F8E4M3;
}

EngineSetup EngineSetup::create(const Args& args, const std::vector<GenerateBody>& planned) {
  EngineSetup s;
  const std::string model_dir = resolve_model_dir(args);
  s.model_dir = model_dir;
  const std::string device = args.get_or("device", "cpu");
  if (args.get_int("num-shard", 1) != 1) throw UsageError("--num-shard > 1 (tensor parallelism) is not implemented yet");
  if (device == "cpu") {
    const std::string dtype = args.get_or("dtype", "float32");
    if (dtype != "float32" && dtype != "auto") throw UsageError("--dtype " + dtype + " is not supported on cpu (float32)");
    s.backend = make_cpu_backend(static_cast<int>(args.get_int("threads", 0)));
  } else if (device == "cuda") {
#ifdef LORAX_HAVE_CUDA
    const std::string dtype = args.get_or("dtype", "bfloat16");
    DType dt;
    if (dtype == "bfloat16" || dtype == "auto") {
      dt = DType::BF16;
    } else if (dtype == "float16") {
      dt = DType::F16;
    } else if (dtype == "float32") {
      dt = DType::F32;
    } else {
      throw UsageError("--dtype must be bfloat16, float16 or float32");
    }
    s.backend = make_cuda_backend(dt);
#else
    throw UsageError("--device cuda: this build has no CUDA backend (configure with nvcc available)");
#endif
  } else {
    throw UsageError("--device must be cpu or cuda");
  }
  const std::string format = args.get_or("load-format", "auto");
  if (format != "auto" && format != "dummy") throw UsageError("--load-format must be auto or dummy");
  s.model = Model::load(model_dir, *s.backend, format == "dummy" ? LoadFormat::Dummy : LoadFormat::Auto);
  if (!args.flag("no-tokenizer")) s.tokenizer = Tokenizer::load(model_dir);
  const ModelSpec& spec = s.model->spec();

  s.limits.max_total_tokens = static_cast<int>(args.get_int("max-total-tokens", std::min(2048, spec.max_position_embeddings)));
  s.limits.max_input_length = static_cast<int>(args.get_int("max-input-length", std::max(1, s.limits.max_total_tokens - 1)));
  if (s.limits.max_input_length >= s.limits.max_total_tokens)
    throw UsageError("--max-input-length must be smaller than --max-total-tokens");
  const int64_t schema_bytes = args.get_int("max-schema-bytes", static_cast<int64_t>(s.limits.max_schema_bytes));
  if (schema_bytes <= 0) throw UsageError("--max-schema-bytes must be positive");
  s.limits.max_schema_bytes = static_cast<size_t>(schema_bytes);
  if (spec.positions == PositionKind::Learned && s.limits.max_total_tokens > spec.max_position_embeddings)
    throw UsageError("--max-total-tokens exceeds the model's " + std::to_string(spec.max_position_embeddings) +
                     " learned positions");

  const DType kv_dtype = kv_cache_dtype(args.get_or("kv-cache-dtype", "auto"), *s.backend);
  const int block_size = static_cast<int>(args.get_int("block-size", 16));
  if (block_size <= 0) throw UsageError("--block-size must be positive");
  long long kv_tokens = args.get_int("kv-cache-tokens", 0);
  if (kv_tokens <= 0) {
    // Offline: room for every planned request at once; serving: a fixed pool.
    const long long need = static_cast<long long>(planned.size()) *
                           ((s.limits.max_total_tokens + block_size - 1) / block_size) * block_size;
    kv_tokens = std::max<long long>(need, args.get_int("max-batch-total-tokens", 16384));
    if (planned.empty() && s.backend->free_memory() > 0) {
      // GPU serving: the KV pool takes what weights leave, within --gpu-memory-utilization.
      const double util = args.get_double("gpu-memory-utilization", 0.9);
      const double per_token = 2.0 * spec.num_layers * spec.kv_size() * dtype_size(kv_dtype);
      const double headroom = (1ull << 30) + 64.0 * args.get_int("max-batch-prefill-tokens", 4096) *
                                                 (spec.qkv_size() + 2 * spec.intermediate_size) ;
      kv_tokens = std::max<long long>(block_size, static_cast<long long>((s.backend->free_memory() * util - headroom) / per_token));
    }
  }
  const int blocks = static_cast<int>((kv_tokens + block_size - 1) / block_size);
  s.kv = std::make_unique<KvCache>(*s.backend, spec.num_layers, blocks, block_size, spec.num_kv_heads, spec.head_dim,
                                   kv_dtype);
  if (kv_dtype == DType::F8E4M3 && !s.model->weights().kv_scales.empty()) s.kv->set_scales(s.model->weights().kv_scales);

  EngineConfig cfg;
  cfg.max_batch_prefill_tokens = static_cast<int>(args.get_int("max-batch-prefill-tokens", 4096));
  cfg.max_batch_total_tokens = static_cast<int>(args.get_int("max-batch-total-tokens", 0));
  cfg.max_active_adapters = static_cast<int>(args.get_int("max-active-adapters", 1024));
  cfg.max_running = static_cast<int>(args.get_int("max-running", 256));
  cfg.adapter_cycle_time_s = args.get_double("adapter-cycle-time-s", 2.0);
  if (cfg.max_active_adapters <= 0) throw UsageError("--max-active-adapters must be positive");
  if (!(cfg.adapter_cycle_time_s >= 0)) throw UsageError("--adapter-cycle-time-s must be >= 0");
  if (cfg.max_batch_prefill_tokens <= 0) throw UsageError("--max-batch-prefill-tokens must be positive");
  // Exact for every model served (K/V depend only on the prefix and the
  // adapter; window layers keep all blocks and mask by position), so on by default.
  const std::string prefix_caching = args.get_or("prefix-caching", "on");
  if (prefix_caching != "on" && prefix_caching != "off")
    throw UsageError("--prefix-caching must be on or off, not '" + prefix_caching + "'");
  cfg.prefix_caching = prefix_caching == "on";

  AdapterStoreConfig ac;
  ac.sources.adapter_dir = args.get_or("adapter-dir", "");
  ac.sources.roots = args.get_all("adapter-root");
  ac.sources.cache_dir = args.get_or(
      "adapter-cache-dir", (std::filesystem::temp_directory_path() / "lorax-adapter-cache").string());
  const long long max_bytes = args.get_int("adapter-max-bytes", 1ll << 30);
  if (max_bytes <= 0) throw UsageError("--adapter-max-bytes must be positive");
  ac.sources.max_bytes = static_cast<uint64_t>(max_bytes);
  ac.sources.hub_endpoint = args.get_or("hub-endpoint", ac.sources.hub_endpoint);
  ac.sources.s3_endpoint = args.get_or("s3-endpoint", ac.sources.s3_endpoint);
  ac.sources.url_allow = args.get_all("adapter-url-allow");
  for (const std::string& e : ac.sources.url_allow)
    if (!valid_allow_entry(e)) throw UsageError("--adapter-url-allow " + e + ": expected HOST, HOST:PORT or a CIDR");
  ac.max_device = static_cast<int>(args.get_int("max-loaded-adapters", 16));
  ac.max_host = static_cast<int>(args.get_int("max-host-adapters", 128));
  if (ac.max_device <= 0) throw UsageError("--max-loaded-adapters must be positive");
  if (ac.max_host < 0) throw UsageError("--max-host-adapters must be >= 0");
  // CUDA stages adapters in pinned memory, reserved up front by `serve`: 8 GiB
  // unless told (about a hundred rank-16 Llama-3-8B adapters of all projections).
  const long long host_bytes = args.get_int("max-host-adapter-bytes", device == "cuda" ? 8ll << 30 : 0);
  if (host_bytes < 0) throw UsageError("--max-host-adapter-bytes must be >= 0 (0: no limit)");
  ac.max_host_bytes = static_cast<uint64_t>(host_bytes);
  // `generate --adapter DIR`: the operator named that folder on the command line.
  if (auto a = args.get("adapter"); a && std::filesystem::is_directory(*a)) ac.sources.roots.push_back(*a);
  s.adapters = std::make_unique<AdapterStore>(ac, spec, *s.backend);
  if (auto registry = args.get("adapter-registry")) s.adapters->set_registry(std::make_shared<AdapterRegistry>(*registry));
  s.engine = std::make_unique<Engine>(*s.model, *s.kv, s.tokenizer, cfg, s.adapters.get());
  return s;
}

GenerationRequest EngineSetup::make_request(const GenerateBody& body) const {
  GenerationRequest req = build_generation_request(body, *tokenizer, limits);
  if (!req.adapter_id.empty()) {
    const GenerateParameters& p = body.parameters;
    req.adapter = adapters->acquire({req.adapter_id, p.adapter_source.value_or(""), p.api_token.value_or(""), ""});
  }
  return req;
}

}  // namespace lorax::cli
