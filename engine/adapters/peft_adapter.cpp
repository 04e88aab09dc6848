#include "adapters/peft_adapter.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <fcntl.h>
#include <unistd.h>

#include "common/json_integer.h"
#include "model/checkpoint_layout.h"
#include "model/safetensors.h"

namespace lorax {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct PeftConfig {
  int r = 8;
  double alpha = 8;
  bool rslora = false;
  std::map<std::string, int> rank_pattern;
  std::map<std::string, double> alpha_pattern;
};

// True when `key` (a PEFT rank_pattern/alpha_pattern regex) matches all of `module`
// the way PEFT does: `(.*\.)?KEY$`. PCRE2 with a match limit, not std::regex: the key
// comes from a client's adapter_config.json, and a backtracking pattern such as
// `(a|a)*b` kept a loader thread busy for minutes (found by the adapter_config fuzz target).
bool pattern_matches(const std::string& key, const std::string& module, const std::string& id) {
  const std::string pattern = "(?:.*\\.)?(?:" + key + ")";
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(),
                                   PCRE2_ANCHORED | PCRE2_ENDANCHORED, &error, &offset, nullptr);
  if (!code)  // not a regex: PEFT would fail; a literal suffix match is the kind reading
    return module == key || (module.size() > key.size() &&
                             module.compare(module.size() - key.size() - 1, std::string::npos, "." + key) == 0);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  pcre2_match_context* ctx = pcre2_match_context_create(nullptr);
  pcre2_set_match_limit(ctx, 200000);
  pcre2_set_depth_limit(ctx, 10000);
  const int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(module.c_str()), module.size(), 0, 0, md, ctx);
  pcre2_match_context_free(ctx);
  pcre2_match_data_free(md);
  pcre2_code_free(code);
  if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT)
    throw AdapterError("adapter " + id + ": a rank_pattern/alpha_pattern key is too costly to match");
  return rc >= 0;
}

// The first pattern key matching `module`.
template <typename T>
std::optional<T> match_pattern(const std::map<std::string, T>& patterns, const std::string& module,
                               const std::string& id) {
  for (auto& [key, value] : patterns) {
    if (key.size() > 512) throw AdapterError("adapter " + id + ": a rank_pattern/alpha_pattern key is over 512 characters");
    if (pattern_matches(key, module, id)) return value;
  }
  return std::nullopt;
}

// A rank as the file states it, refused unless 1..65536: nlohmann's get<int> would
// turn 2^32+8 into 8 and load an adapter that is not the one on disk.
int rank_value(const json& v, const char* field, const std::string& id) {
  if (!json_integer_in(v, 1, 65536)) throw AdapterError("adapter " + id + ": adapter_config.json `" + field + "` must be an integer from 1 to 65536");
  return static_cast<int>(v.get<int64_t>());
}

// lora_alpha scales every delta: a non-finite or absurd one would make every logit NaN.
double alpha_value(const json& v, const char* field, const std::string& id) {
  const double a = v.is_number() ? v.get<double>() : std::nan("");
  if (!std::isfinite(a) || std::fabs(a) > 1e6)
    throw AdapterError("adapter " + id + ": adapter_config.json `" + field + "` must be a finite number of at most 1e6");
  return a;
}

PeftConfig read_config(const fs::path& path, const std::string& id, std::vector<std::string>* warnings) {
  std::ifstream in(path);
  if (!in) throw AdapterError("adapter " + id + ": " + path.filename().string() + " not found");
  json j;
  try {
    in >> j;
  } catch (const json::exception&) {
    throw AdapterError("adapter " + id + ": " + path.filename().string() + " is not valid JSON");
  }
  if (!j.is_object()) throw AdapterError("adapter " + id + ": adapter_config.json must be an object");
  auto str = [&](const char* k, const std::string& d) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : d; };
  if (str("peft_type", "LORA") != "LORA")
    throw AdapterError("adapter " + id + ": peft_type " + str("peft_type", "") + " is not supported (only LORA)");
  // Flags must be booleans (or null); `"use_dora": 1` is a config error, not a 500.
  auto flag = [&](const char* k) {
    if (!j.contains(k) || j[k].is_null()) return false;
    if (!j[k].is_boolean()) throw AdapterError("adapter " + id + ": adapter_config.json `" + k + "` must be a boolean");
    return j[k].get<bool>();
  };
  if (flag("use_dora")) throw AdapterError("adapter " + id + ": DoRA adapters (use_dora) are not supported");
  if (str("bias", "none") != "none")
    throw AdapterError("adapter " + id + ": trained biases (bias=" + str("bias", "") + ") are not supported");
  if (j.contains("modules_to_save") && !j["modules_to_save"].is_null() && !j["modules_to_save"].empty())
    throw AdapterError("adapter " + id + ": modules_to_save (fully trained modules) are not supported");
  PeftConfig c;
  try {
    c.r = j.contains("r") ? rank_value(j["r"], "r", id) : 8;
    c.alpha = j.contains("lora_alpha") ? alpha_value(j["lora_alpha"], "lora_alpha", id) : static_cast<double>(c.r);
    c.rslora = flag("use_rslora");
    if (j.contains("rank_pattern") && j["rank_pattern"].is_object())
      for (auto& [k, v] : j["rank_pattern"].items()) c.rank_pattern[k] = rank_value(v, "rank_pattern", id);
    if (j.contains("alpha_pattern") && j["alpha_pattern"].is_object())
      for (auto& [k, v] : j["alpha_pattern"].items()) c.alpha_pattern[k] = alpha_value(v, "alpha_pattern", id);
  } catch (const json::exception&) {
    throw AdapterError("adapter " + id + ": adapter_config.json has a field of the wrong type");
  }
  static const std::set<std::string> known = {
      "r", "lora_alpha", "use_rslora", "rank_pattern", "alpha_pattern", "target_modules", "fan_in_fan_out",
      "peft_type", "task_type", "bias", "use_dora", "modules_to_save", "base_model_name_or_path", "revision",
      "inference_mode", "lora_dropout", "init_lora_weights", "layers_to_transform", "layers_pattern",
      "auto_mapping", "megatron_config", "megatron_core", "loftq_config", "layer_replication", "runtime_config",
      "exclude_modules", "eva_config", "corda_config", "lora_bias", "trainable_token_indices", "target_parameters",
      "qalora_group_size", "use_qalora", "alora_invocation_tokens", "arrow_config", "ensure_weight_tying"};
  for (auto& [k, _] : j.items())
    if (!known.count(k) && warnings) warnings->push_back("adapter " + id + ": ignoring unknown config key '" + k + "'");
  if (flag("lora_bias")) throw AdapterError("adapter " + id + ": lora_bias is not supported");
  return c;
}

// "base_model.model.<module>.lora_A[.default].weight" -> (module, 'A'|'B').
std::optional<std::pair<std::string, char>> parse_key(std::string key) {
  const std::string prefix = "base_model.model.";
  if (key.rfind(prefix, 0) == 0) key = key.substr(prefix.size());
  for (char which : {'A', 'B'}) {
    const std::string tag = std::string(".lora_") + which + ".";
    size_t pos = key.find(tag);
    if (pos == std::string::npos) continue;
    std::string tail = key.substr(pos + tag.size());
    if (tail == "weight" || tail.rfind(".weight") == tail.size() - 7) return std::make_pair(key.substr(0, pos), which);
  }
  return std::nullopt;
}

// One LoRA pair of the adapter as the checkpoint holds it.
struct PlannedPair {
  LoraTarget target;
  int rank = 0;
  float scale = 0;
  const TensorInfo* a = nullptr;
  const TensorInfo* b = nullptr;
};

std::vector<PlannedPair> plan_pairs(const Checkpoint& ckpt, const PeftConfig& cfg, const std::string& id,
                                    const std::string& weights_file, const ModelSpec& spec, const Backend& backend,
                                    std::vector<std::string>* warnings) {
  std::map<std::string, std::pair<std::string, std::string>> modules;  // module -> (A key, B key)
  for (const std::string& key : ckpt.names()) {
    if (key.find("lora_magnitude_vector") != std::string::npos)
      throw AdapterError("adapter " + id + ": DoRA weights ('" + key + "') are not supported");
    if (key.find("lora_embedding_") != std::string::npos)
      throw AdapterError("adapter " + id + ": LoRA on embeddings ('" + key + "') is not supported");
    auto parsed = parse_key(key);
    if (!parsed) {
      if (key.find(".lora_B.") != std::string::npos && key.size() > 5 && key.compare(key.size() - 5, 5, ".bias") == 0)
        throw AdapterError("adapter " + id + ": trained LoRA biases ('" + key + "') are not supported");
      if (warnings) warnings->push_back("adapter " + id + ": ignoring tensor '" + key + "'");
      continue;
    }
    (parsed->second == 'A' ? modules[parsed->first].first : modules[parsed->first].second) = key;
  }
  if (modules.empty()) throw AdapterError("adapter " + id + ": no LoRA weights found in " + weights_file);

  std::vector<PlannedPair> out;
  for (auto& [module, keys] : modules) {
    if (keys.first.empty() || keys.second.empty())
      throw AdapterError("adapter " + id + ": module '" + module + "' lacks its lora_" + (keys.first.empty() ? "A" : "B") +
                         " weight");
    auto target = lora_target(spec, module);
    if (!target) {
      throw AdapterError("adapter " + id + ": module '" + module + "' does not exist in the " + spec.model_type +
                         " base model (wrong base model?)");
    }
    const TensorInfo& a = ckpt.info(keys.first);
    const TensorInfo& b = ckpt.info(keys.second);
    if (a.shape.size() != 2 || b.shape.size() != 2 || a.shape[1] != target->in_features ||
        b.shape[0] != target->out_features || a.shape[0] != b.shape[1])
      throw AdapterError("adapter " + id + ": '" + module + "' has lora_A " + shape_string(a.shape) + " and lora_B " +
                         shape_string(b.shape) + "; the base model needs [r, " + std::to_string(target->in_features) +
                         "] and [" + std::to_string(target->out_features) + ", r] (wrong base model?)");
    for (const TensorInfo* t : {&a, &b})
      if (t->dtype != "F32" && t->dtype != "F16" && t->dtype != "BF16")
        throw AdapterError("adapter " + id + ": tensor '" + t->name + "' has dtype " + t->dtype +
                           "; expected F32, F16 or BF16");
    const int rank = static_cast<int>(a.shape[0]);
    const int configured = match_pattern(cfg.rank_pattern, module, id).value_or(cfg.r);
    if (configured != rank)
      throw AdapterError("adapter " + id + ": '" + module + "' has rank " + std::to_string(rank) +
                         " but adapter_config.json says " + std::to_string(configured));
    if (backend.max_lora_rank() > 0 && rank > backend.max_lora_rank())
      throw AdapterError("adapter " + id + ": '" + module + "' has rank " + std::to_string(rank) + "; the " +
                         backend.name() + " backend serves ranks up to " + std::to_string(backend.max_lora_rank()));
    const double alpha = match_pattern(cfg.alpha_pattern, module, id).value_or(cfg.alpha);
    PlannedPair p;
    p.target = *target;
    p.rank = rank;
    p.scale = static_cast<float>(alpha / (cfg.rslora ? std::sqrt(static_cast<double>(rank)) : rank));
    p.a = &a;
    p.b = &b;
    out.push_back(p);
  }
  return out;
}

DType safetensors_dtype(const std::string& d) { return d == "F32" ? DType::F32 : d == "F16" ? DType::F16 : DType::BF16; }

// Reads tensors of one safetensors file with pread and writes them, converted to
// the backend's storage dtype, into the staging buffer.
class Stager {
 public:
  Stager(const std::string& path, const std::string& id, const Backend& backend)
      : path_(path), id_(id), backend_(backend), fd_(::open(path.c_str(), O_RDONLY)) {
    if (fd_ < 0) throw AdapterError("adapter " + id + ": cannot open " + path);
  }
  ~Stager() { ::close(fd_); }
  Stager(const Stager&) = delete;
  Stager& operator=(const Stager&) = delete;

  // Rows of `t` ([rows, cols]) into `dst`, row r landing at row_of(r).
  template <typename RowOf>
  void stage(const TensorInfo& t, uint8_t* dst, RowOf row_of) {
    const int64_t rows = t.shape[0], cols = t.shape[1];
    const DType src = safetensors_dtype(t.dtype), storage = backend_.compute_dtype();
    const size_t src_row = cols * dtype_size(src), dst_row = cols * dtype_size(storage);
    bool identity = true;
    for (int64_t r = 0; r < rows && identity; ++r) identity = row_of(r) == r;
    if (src == storage && identity) return read(t.file_offset, dst, t.nbytes, t);  // the common case: one read
    raw_.resize(t.nbytes);
    read(t.file_offset, raw_.data(), t.nbytes, t);
    floats_.resize(cols);
    for (int64_t r = 0; r < rows; ++r) {
      uint8_t* out = dst + row_of(r) * dst_row;
      const uint8_t* in = raw_.data() + r * src_row;
      if (src == storage) {
        std::memcpy(out, in, src_row);
        continue;
      }
      for (int64_t c = 0; c < cols; ++c) {
        if (src == DType::F32) {
          std::memcpy(&floats_[c], in + 4 * c, 4);
        } else {
          uint16_t v;
          std::memcpy(&v, in + 2 * c, 2);
          floats_[c] = src == DType::F16 ? half_to_float(v) : bf16_to_float(v);
        }
      }
      backend_.to_storage(floats_.data(), cols, out);
    }
  }

 private:
  void read(uint64_t offset, uint8_t* dst, size_t n, const TensorInfo& t) {
    size_t done = 0;
    while (done < n) {
      const ssize_t got = ::pread(fd_, dst + done, n - done, static_cast<off_t>(offset + done));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0)
        throw AdapterError("adapter " + id_ + ": " + path_ + " is truncated or unreadable (tensor '" + t.name + "')");
      done += static_cast<size_t>(got);
    }
  }

  std::string path_, id_;
  const Backend& backend_;
  int fd_;
  std::vector<uint8_t> raw_;
  std::vector<float> floats_;
};

size_t aligned(size_t n) { return (n + 255) / 256 * 256; }

}  // namespace

void StagedAdapter::append(Piece piece) {
  const size_t elem = dtype_size(dtype);
  piece.a_offset = bytes;
  bytes += aligned(static_cast<size_t>(piece.rank) * piece.in * elem);
  piece.b_offset = bytes;
  bytes += aligned(static_cast<size_t>(piece.out) * piece.rank * elem);
  max_rank = std::max(max_rank, piece.rank);
  pieces.push_back(piece);
}

StagedAdapter stage_peft_adapter(const std::string& dir, const std::string& id, const ModelSpec& spec,
                                 Backend& backend, size_t max_bytes, std::vector<std::string>* warnings) {
  fs::path root(dir);
  if (!fs::is_directory(root)) throw AdapterError("adapter " + id + ": directory " + dir + " does not exist");
  PeftConfig cfg = read_config(root / "adapter_config.json", id, warnings);
  fs::path weights = root / "adapter_model.safetensors";
  if (!fs::exists(weights)) {
    if (fs::exists(root / "adapter_model.bin"))
      throw AdapterError("adapter " + id + ": adapter_model.bin is a pickled checkpoint and is refused for safety; "
                         "save the adapter with safe_serialization=True (adapter_model.safetensors)");
    throw AdapterError("adapter " + id + ": adapter_model.safetensors not found in " + dir);
  }
  Checkpoint ckpt = [&] {
    try {
      return Checkpoint::open_file(weights.string(), /*map_data=*/false);
    } catch (const ModelError& e) {
      throw AdapterError("adapter " + id + ": " + e.what());
    }
  }();
  const std::vector<PlannedPair> pairs = plan_pairs(ckpt, cfg, id, weights.string(), spec, backend, warnings);

  StagedAdapter out;
  out.id = id;
  out.dtype = backend.compute_dtype();
  out.num_layers = spec.num_layers;
  for (const PlannedPair& p : pairs) {
    StagedAdapter::Piece piece;
    piece.layer = p.target.projection == LoraProjection::LmHead ? -1 : p.target.layer;
    piece.projection = piece.layer < 0 ? Projection::Qkv : static_cast<Projection>(static_cast<int>(p.target.projection));
    piece.col_offset = p.target.col_offset;
    piece.in = p.target.in_features;
    piece.out = p.target.out_features;
    piece.rank = p.rank;
    piece.scale = p.scale;
    out.append(piece);
  }
  if (max_bytes > 0 && out.bytes > max_bytes)
    throw AdapterError("adapter " + id + ": its weights take " + std::to_string(out.bytes) +
                       " bytes, more than the host adapter memory of " + std::to_string(max_bytes) +
                       " bytes (--max-host-adapter-bytes)");
  out.host = backend.host_alloc(out.bytes);
  auto* base = static_cast<uint8_t*>(out.host.get());
  Stager stager(weights.string(), id, backend);
  for (size_t i = 0; i < pairs.size(); ++i) {
    const PlannedPair& p = pairs[i];
    const StagedAdapter::Piece& piece = out.pieces[i];
    stager.stage(*p.a, base + piece.a_offset, [](int64_t r) { return r; });
    if (p.target.neox_qkv)
      stager.stage(*p.b, base + piece.b_offset, [&](int64_t r) { return neox_qkv_row(r, spec.num_heads, spec.head_dim); });
    else
      stager.stage(*p.b, base + piece.b_offset, [](int64_t r) { return r; });
  }
  return out;
}

std::shared_ptr<AdapterWeights> adapter_weights_view(const StagedAdapter& staged, std::shared_ptr<void> memory) {
  auto out = std::make_shared<AdapterWeights>();
  out->id = staged.id;
  out->max_rank = staged.max_rank;
  out->bytes = staged.bytes;
  out->layers.resize(staged.num_layers);
  auto* base = static_cast<uint8_t*>(memory.get());
  auto view = [&](size_t offset, int64_t rows, int64_t cols) {
    Tensor t;
    t.data = base + offset;
    t.dtype = staged.dtype;
    t.shape = {rows, cols};
    t.owner = memory;
    return t;
  };
  for (const StagedAdapter::Piece& p : staged.pieces) {
    LoraPair pair;
    pair.rank = p.rank;
    pair.scale = p.scale;
    pair.a = view(p.a_offset, p.rank, p.in);
    pair.b = view(p.b_offset, p.out, p.rank);
    if (p.layer < 0)
      out->lm_head = pair;
    else
      out->layers[p.layer][static_cast<int>(p.projection)].push_back({p.col_offset, pair});
  }
  return out;
}

AdapterWeights load_peft_adapter(const std::string& dir, const std::string& id, const ModelSpec& spec,
                                 Backend& backend, std::vector<std::string>* warnings) {
  const StagedAdapter staged = stage_peft_adapter(dir, id, spec, backend, 0, warnings);
  Backend::DeviceCopy copy = backend.copy_to_device(staged.host, staged.bytes);
  while (!copy.ready()) std::this_thread::yield();
  return *adapter_weights_view(staged, copy.memory);
}

}  // namespace lorax
