#include "cli/engine_setup.h"

#ifdef LORAX_HAVE_CUDA
#include "runtime/cuda/cuda_backend.h"
#endif

namespace lorax::cli {

const std::set<std::string>& engine_value_flags() {
  static const std::set<std::string> flags = {
      "device", "dtype", "threads", "load-format", "block-size", "kv-cache-tokens", "max-input-length",
      "max-total-tokens", "max-batch-total-tokens", "max-batch-prefill-tokens", "max-active-adapters",
      "max-loaded-adapters", "adapter-dir", "adapter-cycle-time-s", "num-shard", "max-running",
      "gpu-memory-utilization"};
  return flags;
}

EngineSetup EngineSetup::create(const Args& args, const std::vector<GenerateBody>& planned) {
  EngineSetup s;
  const std::string model_dir = args.require("model");
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
  if (spec.positions == PositionKind::Learned && s.limits.max_total_tokens > spec.max_position_embeddings)
    throw UsageError("--max-total-tokens exceeds the model's " + std::to_string(spec.max_position_embeddings) +
                     " learned positions");

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
      const double per_token = 2.0 * spec.num_layers * spec.kv_size() * dtype_size(s.backend->compute_dtype());
      const double headroom = (1ull << 30) + 64.0 * args.get_int("max-batch-prefill-tokens", 4096) *
                                                 (spec.qkv_size() + 2 * spec.intermediate_size) ;
      kv_tokens = std::max<long long>(block_size, static_cast<long long>((s.backend->free_memory() * util - headroom) / per_token));
    }
  }
  const int blocks = static_cast<int>((kv_tokens + block_size - 1) / block_size);
  s.kv = std::make_unique<KvCache>(*s.backend, spec.num_layers, blocks, block_size, spec.num_kv_heads, spec.head_dim);

  EngineConfig cfg;
  cfg.max_batch_prefill_tokens = static_cast<int>(args.get_int("max-batch-prefill-tokens", 4096));
  cfg.max_batch_total_tokens = static_cast<int>(args.get_int("max-batch-total-tokens", 0));
  cfg.max_active_adapters = static_cast<int>(args.get_int("max-active-adapters", 1024));
  cfg.max_running = static_cast<int>(args.get_int("max-running", 256));
  if (cfg.max_batch_prefill_tokens <= 0) throw UsageError("--max-batch-prefill-tokens must be positive");
  s.engine = std::make_unique<Engine>(*s.model, *s.kv, s.tokenizer, cfg);
  return s;
}

GenerationRequest EngineSetup::make_request(const GenerateBody& body) const {
  return build_generation_request(body, *tokenizer, limits);
}

}  // namespace lorax::cli
