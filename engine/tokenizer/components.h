// The pipeline stages of a Hugging Face tokenizer.json (normalizer, pre-tokenizer,
// decoder, post-processor), each built from its JSON description. Behaviour follows
// the `tokenizers` library; see the .cpp files for the details it depends on.
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/json_integer.h"

namespace lorax::tok {

using json = nlohmann::json;

struct Normalizer {
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& s) const = 0;
};

// One split of the pre-tokenized string. `at_origin`: it begins at offset 0 of the
// original input (Metaspace's prepend_scheme "first" depends on it).
struct Piece {
  std::string text;
  bool at_origin = false;
};

struct PreTokenizer {
  virtual ~PreTokenizer() = default;
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};

struct Decoder {
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
  // The same rewrite without turning invalid UTF-8 into U+FFFD: the raw bytes a
  // token adds to the text, which constrained decoding matches byte by byte.
  virtual void decode_chain_bytes(std::vector<std::string>& tokens) const { decode_chain(tokens); }
};

// Adds special tokens around the ids of one sequence (pairs are not needed by the engine).
struct PostProcessor {
  virtual ~PostProcessor() = default;
  virtual void process(std::vector<int32_t>& ids) const = 0;
};

// `token_id` resolves a token string for processors that name tokens.
using TokenLookup = std::unordered_map<std::string, int32_t>;

// Factories; throw std::runtime_error with a message naming the problem. A null JSON gives nullptr.
std::unique_ptr<Normalizer> make_normalizer(const json& j);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j);
std::unique_ptr<Decoder> make_decoder(const json& j);
std::unique_ptr<PostProcessor> make_post_processor(const json& j);

// A count or id field of tokenizer.json, an integer from 0 to `max`; anything else
// (a float such as 1e24, whose get<int64_t> is an undefined float-to-int cast, a
// negative or too large number) is a runtime_error naming `what`.
inline uint64_t json_count(const json& v, const std::string& what, uint64_t max) {
  if (!json_integer_in(v, 0, static_cast<int64_t>(std::min<uint64_t>(max, INT64_MAX))))
    throw std::runtime_error(what + " must be an integer from 0 to " + std::to_string(max) + ", not " + v.dump());
  return v.get<uint64_t>();
}

// "a" pattern objects: {"String": s} or {"Regex": r}.
struct PatternSpec {
  bool is_regex = false;
  std::string text;
};
PatternSpec parse_pattern(const json& j);

}  // namespace lorax::tok
