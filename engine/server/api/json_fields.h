// Request integers read through common/json_integer.h, refused with a ValidationError
// naming the field.
#pragma once
#include <cstdint>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

#include "common/json_integer.h"
#include "server/api/generate_api.h"

namespace lorax {

// `obj[name]` as a T, refused (ValidationError naming the field) unless it is an
// integer within T's range and [lo, hi].
template <typename T, typename Json>
T checked_integer(const Json& obj, const char* name, int64_t lo = std::numeric_limits<T>::min(),
                  int64_t hi = std::numeric_limits<T>::max()) {
  const Json& v = obj[name];
  if (!v.is_number_integer()) throw ValidationError(std::string("`") + name + "` must be an integer");
  if (!json_integer_in(v, lo, hi))
    throw ValidationError(std::string("`") + name + "` must be an integer between " + std::to_string(lo) + " and " +
                          std::to_string(hi));
  return static_cast<T>(v.template get<int64_t>());
}

}  // namespace lorax
