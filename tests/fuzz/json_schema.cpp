// Fuzzes structured output: the input's first line is a JSON Schema (as a client
// sends it in response_format), the rest a text. SchemaError is the expected answer
// to a schema; for one that compiles, the text is fed to the matcher byte by byte.
// Besides sanitizer reports, a finding is: a text the matcher calls complete that
// nlohmann's parser rejects, or a token mask (over a small fixed vocabulary) that
// differs from feeding every token's bytes one by one.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.h"
#include "structured/token_mask.h"

namespace {

using namespace lorax::structured;

const TokenTable& table() {
  static const auto t = TokenTable::from_bytes(
      {"", "{", "}", "[", "]", "\"", ":", ",", " ", "\n", "a", "ab", "1", "-", ".", "e", "0", "true", "false", "null",
       "\\", "\\u00", "\xc3", "\xa9", "\xc3\xa9", "\"a\"", "{\"", "\":", "\",\"", "\"}", "12", "-0.5", "2024-", "@", "x@y"},
      {0});
  return *t;
}

void check_mask(const Schema& s, const MatchState& state) {
  const TokenMask m = compute_mask(s, table(), state, true);
  for (size_t id = 1; id < table().vocab_size(); ++id) {
    MatchState st = state;
    const bool ok = advance(s, st, table().bytes(static_cast<int32_t>(id)));
    if (ok != m.allows(static_cast<int32_t>(id))) lorax_fuzz::broken("compute_mask", "token " + std::to_string(id));
  }
  if (m.allows(0) != state.can_finish(s)) lorax_fuzz::broken("compute_mask", "EOS");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nl = input.find('\n');
  const auto schema_json = nlohmann::json::parse(input.substr(0, nl), nullptr, false);
  if (schema_json.is_discarded()) return 0;
  std::shared_ptr<const Schema> schema;
  try {
    schema = Schema::compile(schema_json);
  } catch (const SchemaError&) {
    return 0;
  }
  const std::string_view text = nl == std::string_view::npos ? std::string_view() : input.substr(nl + 1);
  MatchState state = initial_state(*schema), next;
  check_mask(*schema, state);
  size_t fed = 0;
  for (char c : text) {
    advance(*schema, state, static_cast<uint8_t>(c), next);
    if (next.dead()) break;
    std::swap(state, next);
    ++fed;
    if (fed % 8 == 0) check_mask(*schema, state);
  }
  if (state.can_finish(*schema) && nlohmann::json::parse(text.substr(0, fed), nullptr, false).is_discarded())
    lorax_fuzz::broken("json_matcher", "a complete text that is not JSON");
  return 0;
}
