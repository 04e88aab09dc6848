// Hugging Face tokenizer.json reader with exact parity to the `tokenizers`
// Python library for BPE models (byte-level and SentencePiece-style), plus the
// streaming detokenizer used when generating.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace lorax {

struct TokenizerError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// tokenizer_config.json (all fields optional; the file itself may be absent).
struct TokenizerConfig {
  std::optional<std::string> bos_token, eos_token, pad_token, unk_token;
  std::optional<std::string> chat_template;                // the default template
  std::map<std::string, std::string> chat_templates;       // named templates (list form), "default" included
  std::optional<bool> add_bos_token, add_eos_token;        // information only: tokenizer.json decides encoding
  nlohmann::json raw = nlohmann::json::object();
};

namespace tok {
struct Pipeline;  // tokenizer.cpp
}

class Tokenizer {
 public:
  // A tokenizer.json file, or a model directory holding tokenizer.json (+ tokenizer_config.json).
  static std::shared_ptr<const Tokenizer> load(const std::filesystem::path& file_or_dir);
  // Parses tokenizer.json text; `name` is used in error messages.
  static std::shared_ptr<const Tokenizer> from_json_text(std::string_view text, const std::string& name);

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::string id_to_token(int32_t id) const;  // raw vocab string ("" if out of range)
  bool is_special(int32_t id) const;          // added token with special=true
  // The bytes token `id` adds in the middle of a text (not at its start, where
  // decoders may strip a space), without UTF-8 repair: a byte-fallback piece is
  // its one byte. None for special tokens, which are not text.
  std::optional<std::string> token_bytes(int32_t id) const;
  size_t vocab_size() const;                  // max id + 1 over vocab and added tokens
  const TokenizerConfig& config() const;

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

 private:
  Tokenizer();
  std::vector<int32_t> encode_impl(std::string_view text, bool add_special_tokens) const;
  std::unique_ptr<tok::Pipeline> p_;
  TokenizerConfig config_;
};

// Streaming: emits text as soon as it is final; never a broken UTF-8 sequence; the concatenation of all
// pushes + finish() equals decode(all ids). Each push decodes only a small window of recent ids
// (prefix/read offsets, as TGI and vLLM do).
class IncrementalDetokenizer {
 public:
  IncrementalDetokenizer(std::shared_ptr<const Tokenizer> tok, bool skip_special_tokens = false,
                         std::span<const int32_t> prompt_ids = {});  // prompt ids give context, not emitted
  std::string push(int32_t id);
  std::string finish();

 private:
  std::string advance(std::string out, size_t new_read);

  std::shared_ptr<const Tokenizer> tok_;
  bool skip_special_;
  std::vector<int32_t> ids_;
  size_t prefix_offset_ = 0, read_offset_ = 0;
  bool last_visible_is_byte_ = false;
  std::optional<std::string> prefix_text_;  // cached decode(ids[prefix:read])
};

}  // namespace lorax
