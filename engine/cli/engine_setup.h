// Builds the engine stack (backend, model, tokenizer, KV cache, scheduler) from
// the flags that `generate`, `serve` and `bench` share.
#pragma once
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "adapters/adapter_store.h"
#include "cli/args.h"
#include "kv/kv_cache.h"
#include "model/model.h"
#include "scheduler/engine.h"
#include "server/api/generate_api.h"
#include "tokenizer/tokenizer.h"

namespace lorax::cli {

// --model --device --dtype --threads --load-format --block-size --kv-cache-tokens
// --max-input-length --max-total-tokens --max-batch-total-tokens --max-batch-prefill-tokens
// --max-active-adapters --max-loaded-adapters --adapter-dir --adapter-cycle-time-s --num-shard
// --adapter-root (repeatable) --adapter-cache-dir --adapter-max-bytes --max-host-adapters --max-host-adapter-bytes
// --hub-endpoint --s3-endpoint --model-cache-dir --model-revision --adapter-registry --prefix-caching
// --kv-cache-dtype
const std::set<std::string>& engine_value_flags();
DType kv_cache_dtype(const std::string& name, const Backend& backend);

struct EngineSetup {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Model> model;
  std::shared_ptr<const Tokenizer> tokenizer;
  std::unique_ptr<KvCache> kv;
  std::unique_ptr<AdapterStore> adapters;  // before the engine, which asks it for residency (and goes first)
  std::unique_ptr<Engine> engine;
  RequestLimits limits;
  std::string model_dir;  // the local folder --model names (an hf:// model once fetched)

  // `planned` (optional) sizes the KV cache for offline runs when no size is given.
  static EngineSetup create(const Args& args, const std::vector<GenerateBody>& planned = {});
  // Also loads the request's adapter (AdapterError when it cannot be used).
  GenerationRequest make_request(const GenerateBody& body) const;
};

}  // namespace lorax::cli
