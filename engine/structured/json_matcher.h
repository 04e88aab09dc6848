// Byte-level matcher of the JSON texts a compiled Schema accepts: a set of
// parse stacks (a pushdown automaton run on all alternatives at once, so anyOf
// and ambiguous prefixes need no backtracking). Every prefix it accepts can be
// completed into a valid text, so a decoder masked by it never gets stuck.
// What it writes, beyond JSON's own rules, and why:
//   - whitespace between tokens: at most kMaxWhitespace bytes per gap (a model
//     would otherwise be free to write spaces forever);
//   - integers and the integer part of numbers: at most 15 digits; fractions
//     15 digits; exponents 2 digits and only where no range is set (values stay
//     exact in a double and every text ends);
//   - object keys without escapes; strings without \u escapes of surrogates and
//     only valid UTF-8 (what every JSON parser reads back unchanged);
//   - nesting at most kMaxDepth frames.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "structured/json_schema.h"

namespace lorax::structured {

constexpr int kMaxWhitespace = 12;
constexpr size_t kMaxDepth = 48;

// One level of a parse stack. Field use depends on `kind` (json_matcher.cpp).
struct Frame {
  int32_t node = 0;
  uint8_t kind = 0;
  uint8_t phase = 0;
  uint16_t ws = 0;
  int32_t a = 0, b = 0;
  uint64_t c = 0;
  bool operator==(const Frame&) const = default;
  auto operator<=>(const Frame&) const = default;
};
using Stack = std::vector<Frame>;

// The set of live stacks after some bytes. Empty: the bytes are not a prefix of
// any accepted text.
struct MatchState {
  std::vector<Stack> stacks;
  bool dead() const { return stacks.empty(); }
  // Nothing more needs to be written: the text so far is complete.
  bool can_finish(const Schema& schema) const;
  // A compact key of the state for mask caches: equal keys, equal masks for
  // tokens of at most `slack` bytes. String lengths and array counts further than
  // `slack` from their bounds are written as "far", so that a long string's steps
  // share one mask.
  std::string key(const Schema& schema, int64_t slack) const;
};

MatchState initial_state(const Schema& schema);
// When the state is inside a plain string (one stack, no escape or UTF-8
// sequence pending, no format): how many more characters it may take (INT64_MAX
// when unlimited). Any token made only of plain string bytes (no quote,
// backslash or control byte, whole UTF-8 characters) with at most that many
// characters is then allowed, whatever its bytes: token_mask.cpp uses this to
// skip walking those tokens one by one.
std::optional<int64_t> plain_string_room(const Schema& schema, const MatchState& state);
// Feeds one byte to every stack; `out` is overwritten (its buffers reused).
void advance(const Schema& schema, const MatchState& in, uint8_t byte, MatchState& out);
// Convenience: feeds bytes in order; false (and `state` unchanged) when rejected.
bool advance(const Schema& schema, MatchState& state, std::string_view bytes);

}  // namespace lorax::structured
