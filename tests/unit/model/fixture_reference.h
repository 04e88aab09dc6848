// Reads tests/fixtures/models/*/reference.json, written by scripts/make-fixtures.py
// from transformers (float64, eager attention) on the GPU machine.
#pragma once
#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kv/kv_cache.h"
#include "model/model.h"
#include "scheduler/engine.h"

namespace lorax::testing {

struct ReferenceCase {
  std::string prompt;
  std::vector<int32_t> input_ids;
  std::vector<std::optional<double>> prefill_logprobs;
  std::vector<int32_t> greedy_ids;
};

struct Reference {
  std::string name;
  std::filesystem::path dir;
  int max_new_tokens = 0;
  std::vector<ReferenceCase> cases;
};

// `file`: reference.json, or reference-fp8-kv.json (scripts/make-fp8-kv-references.py:
// transformers with its keys and values rounded through e4m3).
inline Reference read_reference(const std::filesystem::path& dir, const std::string& file = "reference.json") {
  std::ifstream in(dir / file);
  nlohmann::json j = nlohmann::json::parse(in);
  Reference ref;
  ref.name = j.at("name");
  ref.dir = dir;
  ref.max_new_tokens = j.at("max_new_tokens");
  for (auto& c : j.at("cases")) {
    ReferenceCase rc;
    rc.prompt = c.at("prompt");
    rc.input_ids = c.at("input_ids").get<std::vector<int32_t>>();
    for (auto& lp : c.at("prefill_logprobs"))
      rc.prefill_logprobs.push_back(lp.is_null() ? std::nullopt : std::optional<double>(lp.get<double>()));
    rc.greedy_ids = c.at("greedy_ids").get<std::vector<int32_t>>();
    ref.cases.push_back(std::move(rc));
  }
  return ref;
}

// Every directory under `root` holding a reference.json (models or adapters).
inline std::vector<std::filesystem::path> reference_dirs(const std::filesystem::path& root) {
  std::vector<std::filesystem::path> out;
  if (!std::filesystem::exists(root)) return out;
  for (auto& e : std::filesystem::recursive_directory_iterator(root))
    if (e.is_regular_file() && e.path().filename() == "reference.json") out.push_back(e.path().parent_path());
  std::sort(out.begin(), out.end());
  return out;
}

// Fixture adapters with references (the refused ones under bad/ excluded).
inline std::vector<std::filesystem::path> adapter_dirs() {
  std::vector<std::filesystem::path> out;
  for (auto& d : reference_dirs("tests/fixtures/adapters"))
    if (d.parent_path().filename() != "bad") out.push_back(d);
  return out;
}

// gtest parameter name "<parent>_<dir>" for a fixture directory.
inline std::string fixture_param_name(const std::filesystem::path& dir) {
  std::string n = dir.parent_path().filename().string() + "_" + dir.filename().string();
  for (char& c : n)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return n;
}

// What the engine produced for one case.
struct Outcome {
  std::vector<std::optional<float>> prefill;
  std::vector<int32_t> tokens;
  std::vector<float> token_logprobs;
  int cached_tokens = 0;
};

struct RunOptions {
  int kv_blocks = 0;  // 0: room for every case at once
  int block_size = 4;
  bool solo = false;  // one request at a time
  int rounds = 1;     // submits every prompt this many times, round after round; the last round's outcomes
  bool prefill_details = true;
  EngineConfig config;
  std::shared_ptr<const AdapterWeights> adapter;
  std::optional<DType> kv_dtype;                    // the backend's compute dtype unless set
  std::vector<std::pair<float, float>> kv_scales;   // FP8 (k, v) scales per layer; empty: the model's
};

// Runs every prompt (greedy, EOS ignored) through one engine.
inline std::vector<Outcome> run_prompts(Model& model, const std::vector<std::vector<int32_t>>& prompts, int max_new,
                                        const RunOptions& opt, EngineStats* stats = nullptr) {
  int blocks = opt.kv_blocks;
  if (blocks == 0)
    for (auto& p : prompts) blocks += (static_cast<int>(p.size()) + max_new + opt.block_size - 1) / opt.block_size + 1;
  KvCache kv(model.backend(), model.spec().num_layers, blocks, opt.block_size, model.spec().num_kv_heads,
             model.spec().head_dim, opt.kv_dtype);
  const auto& scales = opt.kv_scales.empty() ? model.weights().kv_scales : opt.kv_scales;
  if (!scales.empty()) kv.set_scales(scales);
  Engine engine(model, kv, nullptr, opt.config);
  std::vector<Outcome> out(prompts.size());
  for (int round = 0; round < opt.rounds; ++round) {
    for (size_t i = 0; i < prompts.size(); ++i) {
      GenerationRequest req;
      req.prompt_ids = prompts[i];
      req.prefill_details = opt.prefill_details;
      req.stopping.max_new_tokens = max_new;
      req.stopping.ignore_eos_token = true;
      req.adapter = opt.adapter;
      req.adapter_id = opt.adapter ? opt.adapter->id : "";
      req.on_finish = [&out, i](const FinishInfo& info) {
        out[i] = Outcome{};
        for (auto& p : info.prefill) out[i].prefill.push_back(p.logprob);
        for (auto& t : info.tokens) {
          out[i].tokens.push_back(t.id);
          out[i].token_logprobs.push_back(t.logprob);
        }
        out[i].cached_tokens = info.cached_tokens;
      };
      engine.submit(std::move(req));
      if (opt.solo) engine.run_until_idle();
    }
    engine.run_until_idle();
  }
  if (kv.allocator().num_free() != blocks) throw std::runtime_error("KV blocks leaked");
  if (stats) *stats = engine.stats();
  return out;
}

// Runs every case of `ref` (greedy, EOS ignored, prompt log-probs on) through one engine.
inline std::vector<Outcome> run_cases(Model& model, const Reference& ref, const RunOptions& opt,
                                      EngineStats* stats = nullptr) {
  std::vector<std::vector<int32_t>> prompts;
  for (auto& c : ref.cases) prompts.push_back(c.input_ids);
  return run_prompts(model, prompts, ref.max_new_tokens, opt, stats);
}

// Prompts that share 0, 1 and many KV blocks of `block_size` with each other
// and with the reference's own: every case, each case followed by the next
// one, and the first block of each case followed by the case after next.
inline std::vector<std::vector<int32_t>> sharing_prompts(const Reference& ref, int block_size) {
  std::vector<std::vector<int32_t>> out;
  const size_t n = ref.cases.size();
  for (auto& c : ref.cases) out.push_back(c.input_ids);
  for (size_t i = 0; i < n; ++i) {
    std::vector<int32_t> p = ref.cases[i].input_ids;
    p.insert(p.end(), ref.cases[(i + 1) % n].input_ids.begin(), ref.cases[(i + 1) % n].input_ids.end());
    out.push_back(p);
  }
  for (size_t i = 0; i < n; ++i) {
    const auto& head = ref.cases[i].input_ids;
    std::vector<int32_t> p(head.begin(), head.begin() + std::min<size_t>(head.size(), block_size));
    const auto& tail = ref.cases[(i + 2) % n].input_ids;
    p.insert(p.end(), tail.begin(), tail.end());
    out.push_back(p);
  }
  return out;
}

// Largest difference between two runs of the same prompts, INFINITY when their
// tokens or the positions that carry log-probs differ.
inline double max_outcome_difference(const std::vector<Outcome>& a, const std::vector<Outcome>& b) {
  if (a.size() != b.size()) return INFINITY;
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].tokens != b[i].tokens || a[i].prefill.size() != b[i].prefill.size()) return INFINITY;
    for (size_t t = 0; t < a[i].prefill.size(); ++t) {
      if (a[i].prefill[t].has_value() != b[i].prefill[t].has_value()) return INFINITY;
      if (a[i].prefill[t]) worst = std::max<double>(worst, std::abs(*a[i].prefill[t] - *b[i].prefill[t]));
    }
    for (size_t t = 0; t < a[i].token_logprobs.size(); ++t)
      worst = std::max<double>(worst, std::abs(a[i].token_logprobs[t] - b[i].token_logprobs[t]));
  }
  return worst;
}

// Largest |logprob - reference| over all prompt positions.
inline double max_logprob_error(const Reference& ref, const std::vector<Outcome>& got) {
  double worst = 0;
  for (size_t i = 0; i < ref.cases.size(); ++i)
    for (size_t t = 1; t < ref.cases[i].prefill_logprobs.size(); ++t) {
      if (t >= got[i].prefill.size() || !got[i].prefill[t]) return INFINITY;
      worst = std::max(worst, std::abs(*got[i].prefill[t] - *ref.cases[i].prefill_logprobs[t]));
    }
  return worst;
}

// Share of greedy positions that match before each case's first divergence.
inline double greedy_agreement(const Reference& ref, const std::vector<Outcome>& got) {
  size_t matched = 0, total = 0;
  for (size_t i = 0; i < ref.cases.size(); ++i) {
    const auto& want = ref.cases[i].greedy_ids;
    total += want.size();
    for (size_t t = 0; t < want.size() && t < got[i].tokens.size() && got[i].tokens[t] == want[t]; ++t) ++matched;
  }
  return total ? static_cast<double>(matched) / total : 1.0;
}

}  // namespace lorax::testing
