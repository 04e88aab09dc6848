// Reads of untrusted JSON numbers that never wrap: nlohmann's get<int>() turns
// 4294967297 into 1 without a word, so every integer is range-checked as the
// 64-bit value the parser kept before it is narrowed.
#pragma once
#include <cstdint>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

#include "server/api/generate_api.h"

namespace lorax {

// True when the JSON integer `v` lies in [lo, hi].
template <typename Json>
bool integer_in_range(const Json& v, int64_t lo, int64_t hi) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.template get<uint64_t>();
    return hi >= 0 && u <= static_cast<uint64_t>(hi) && (lo <= 0 || u >= static_cast<uint64_t>(lo));
  }
  const int64_t i = v.template get<int64_t>();
  return i >= lo && i <= hi;
}

// `obj[name]` as a T, refused (ValidationError naming the field) unless it is an
// integer within T's range and [lo, hi].
template <typename T, typename Json>
T checked_integer(const Json& obj, const char* name, int64_t lo = std::numeric_limits<T>::min(),
                  int64_t hi = std::numeric_limits<T>::max()) {
  const Json& v = obj[name];
  if (!v.is_number_integer()) throw ValidationError(std::string("`") + name + "` must be an integer");
  if (!integer_in_range(v, lo, hi))
    throw ValidationError(std::string("`") + name + "` must be an integer between " + std::to_string(lo) + " and " +
                          std::to_string(hi));
  return static_cast<T>(v.template get<int64_t>());
}

}  // namespace lorax
