// Fuzzes the tokenizer.json reader (Tokenizer::from_json_text) and, when the
// input loads, encode/decode with it: a fixed string and the input's own first
// bytes, with and without special tokens, decode of every id produced plus a
// few out-of-range ones, and the streaming detokenizer, whose output must equal
// decode() of the same ids. TokenizerError is the expected answer; any other
// exception escaping, a sanitizer report or a broken invariant is a finding.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"

namespace {

// The streaming detokenizer decodes a window of recent ids; a Strip decoder that
// removes more than one leading character ("start" > 1) can strip text at the
// window's start that is not at the start of the whole text, and one that removes
// trailing characters ("stop" > 0) strips the end of every window, not only of the
// whole text, so the two legitimately differ there. No published tokenizer does
// either (Llama 2 and Mistral strip start 1, stop 0).
bool strips_window_edges(const nlohmann::json& d) {
  if (!d.is_object()) return false;
  auto number = [&](const char* key) { return d.contains(key) && d[key].is_number() ? d[key].get<double>() : 0.0; };
  if (d.contains("type") && d["type"] == "Strip" && (number("start") > 1 || number("stop") > 0)) return true;
  if (d.contains("decoders") && d["decoders"].is_array())
    for (const auto& e : d["decoders"])
      if (strips_window_edges(e)) return true;
  return false;
}

bool check_streaming = true;

void exercise(const std::shared_ptr<const lorax::Tokenizer>& tok, std::string_view text) {
  for (bool special : {true, false}) {
    const std::vector<int32_t> ids = tok->encode(text, special);
    for (int32_t id : ids)
      if (id < 0 || static_cast<size_t>(id) >= tok->vocab_size())
        lorax_fuzz::broken("Tokenizer::encode", "produced id " + std::to_string(id) + " outside the vocab of " +
                                                    std::to_string(tok->vocab_size()));
    for (bool skip : {false, true}) {
      const std::string decoded = tok->decode(ids, skip);
      lorax::IncrementalDetokenizer detok(tok, skip);
      std::string streamed;
      for (int32_t id : ids) streamed += detok.push(id);
      streamed += detok.finish();
      if (check_streaming && streamed != decoded)
        lorax_fuzz::broken("IncrementalDetokenizer", "streamed '" + streamed + "' but decode() gives '" + decoded + "'");
    }
    for (int32_t id : ids) {
      (void)tok->id_to_token(id);
      (void)tok->is_special(id);
    }
  }
  const int32_t bad[] = {-1, static_cast<int32_t>(tok->vocab_size()), INT32_MAX};
  for (int32_t id : bad) {
    try {
      (void)tok->decode(std::vector<int32_t>{id});
    } catch (const lorax::TokenizerError&) {
    }
    (void)tok->id_to_token(id);
    (void)tok->is_special(id);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::shared_ptr<const lorax::Tokenizer> tok;
  try {
    tok = lorax::Tokenizer::from_json_text(input, "fuzz");
  } catch (const lorax::TokenizerError&) {
    return 0;
  } catch (...) {
    lorax_fuzz::unexpected("Tokenizer::from_json_text");
  }
  const nlohmann::json j = nlohmann::json::parse(input, nullptr, false);
  check_streaming = !(j.is_object() && j.contains("decoder") && strips_window_edges(j["decoder"]));
  try {
    exercise(tok, "Hello world! Grüße aus 東京 <s></s><|endoftext|>  \t\n 123");
    exercise(tok, input.substr(0, 64));
  } catch (const lorax::TokenizerError&) {
  } catch (...) {
    lorax_fuzz::unexpected("Tokenizer encode/decode");
  }
  return 0;
}
