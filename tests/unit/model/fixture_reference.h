// Reads tests/fixtures/models/*/reference.json, written by scripts/make-fixtures.py
// from transformers (float64, eager attention) on the GPU machine.
#pragma once
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

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

inline Reference read_reference(const std::filesystem::path& dir) {
  std::ifstream in(dir / "reference.json");
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

}  // namespace lorax::testing
