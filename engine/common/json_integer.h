// The one check every untrusted JSON integer goes through (requests, adapter and model
// configs, tokenizer.json, safetensors headers): nlohmann's get<int>() wraps
// 4294967297 to 1, and get<int64_t>() of a float such as 1e24 is an undefined cast,
// so a value is judged as the 64-bit integer the parser kept, before any narrowing.
#pragma once
#include <cstdint>

namespace lorax {

// True when `v` is a JSON integer (not a float) within [lo, hi].
template <typename Json>
bool json_integer_in(const Json& v, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) return false;
  if (v.is_number_unsigned()) {
    const uint64_t u = v.template get<uint64_t>();
    return hi >= 0 && u <= static_cast<uint64_t>(hi) && (lo <= 0 || u >= static_cast<uint64_t>(lo));
  }
  const int64_t i = v.template get<int64_t>();
  return i >= lo && i <= hi;
}

}  // namespace lorax
