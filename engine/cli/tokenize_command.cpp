// `lorax-engine tokenize` and `lorax-engine detokenize`. Besides the contract
// flags, --input-jsonl runs many encode/decode cases in one process (parity tests)
// and --bench-file times encoding (bench/tokenizer/bench_encode.py).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <span>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "tokenizer/tokenizer.h"

namespace lorax::cli {
namespace {

using nlohmann::json;

std::string dump(const json& j) { return j.dump(-1, ' ', true, json::error_handler_t::replace); }

// Streams ids[prompt_len:] with ids[:prompt_len] as the prompt context.
std::string stream_decode(const std::shared_ptr<const Tokenizer>& tok, const std::vector<int32_t>& ids, bool skip,
                          size_t prompt_len = 0) {
  prompt_len = std::min(prompt_len, ids.size());
  IncrementalDetokenizer d(tok, skip, std::span<const int32_t>(ids.data(), prompt_len));
  std::string out;
  for (size_t i = prompt_len; i < ids.size(); ++i) out += d.push(ids[i]);
  out += d.finish();
  return out;
}

// One JSON object per line: {"text": str} and/or {"ids": [int], "prompt_len": n} -> encodings and decodings.
int run_jsonl(const std::shared_ptr<const Tokenizer>& tok, const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    json req = json::parse(line);
    json res = json::object();
    if (req.contains("text")) {
      std::string text = req["text"].get<std::string>();
      res["ids"] = tok->encode(text, true);
      res["ids_plain"] = tok->encode(text, false);
    }
    if (req.contains("ids")) {
      auto ids = req["ids"].get<std::vector<int32_t>>();
      res["text"] = tok->decode(ids, false);
      res["text_skip"] = tok->decode(ids, true);
      res["stream"] = stream_decode(tok, ids, false);
      res["stream_skip"] = stream_decode(tok, ids, true);
      if (req.contains("prompt_len")) res["stream_after_prompt"] = stream_decode(tok, ids, false, req["prompt_len"]);
    }
    std::cout << dump(res) << '\n';
  }
  return 0;
}

int run_bench(const std::shared_ptr<const Tokenizer>& tok, const std::string& path, long long repeat) {
  // Documents are separated by NUL bytes so the C++ and Python sides encode the same pieces.
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string all = ss.str();
  std::vector<std::string> docs;
  for (size_t b = 0; b <= all.size();) {
    size_t e = all.find('\0', b);
    if (e == std::string::npos) e = all.size();
    docs.push_back(all.substr(b, e - b));
    b = e + 1;
  }
  size_t tokens = 0;
  double best = 1e30;
  for (long long r = 0; r < repeat; ++r) {
    tokens = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (auto& d : docs) tokens += tok->encode(d, false).size();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, s);
  }
  std::cout << dump(json{{"bytes", all.size()}, {"tokens", tokens}, {"seconds", best}}) << '\n';
  return 0;
}

int run_tokenize(const std::vector<std::string>& argv) {
  Args args(argv, {"tokenizer", "text", "input-jsonl", "bench-file", "repeat"}, {"no-special-tokens", "json"});
  auto tok = Tokenizer::load(args.require("tokenizer"));
  if (auto f = args.get("input-jsonl")) return run_jsonl(tok, *f);
  if (auto f = args.get("bench-file")) return run_bench(tok, *f, args.get_int("repeat", 3));
  auto ids = tok->encode(args.require("text"), !args.flag("no-special-tokens"));
  if (args.flag("json")) {
    std::cout << dump(json{{"ids", ids}}) << '\n';
  } else {
    for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? "," : "") << ids[i];
    std::cout << '\n';
  }
  return 0;
}

int run_detokenize(const std::vector<std::string>& argv) {
  Args args(argv, {"tokenizer", "ids"}, {"skip-special-tokens"});
  auto tok = Tokenizer::load(args.require("tokenizer"));
  std::vector<int32_t> ids;
  std::string list = args.require("ids");
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    char* end = nullptr;
    long long v = std::strtoll(item.c_str(), &end, 10);
    if (*end != '\0' || v < INT32_MIN || v > INT32_MAX) throw UsageError("--ids: '" + item + "' is not an integer");
    ids.push_back(static_cast<int32_t>(v));
  }
  std::cout << tok->decode(ids, args.flag("skip-special-tokens")) << '\n';
  return 0;
}

CommandRegistration reg_tokenize("tokenize", "encode text with a model's tokenizer.json", &run_tokenize);
CommandRegistration reg_detokenize("detokenize", "decode token ids to text", &run_detokenize);

}  // namespace
}  // namespace lorax::cli
