// Limits on untrusted JSON, checked on the raw text before anything parses it:
// nesting depth (a deeply nested body made the error path's recursive dump
// overflow the stack) and members per object or array (order-preserving objects
// insert in linear time, so a body of N keys cost N^2). Hand-written: nlohmann's
// parser has no depth or size limits, and a scan of the text is cheaper than a
// parse with a callback.
#pragma once
#include <string>
#include <string_view>

namespace lorax {

inline constexpr int kMaxJsonDepth = 64;
inline constexpr size_t kMaxJsonMembers = 10000;

// Empty when `text` stays within the limits, else why not (for a 422). Text that is
// not JSON at all passes: the parser reports it.
std::string json_limit_problem(std::string_view text, int max_depth = kMaxJsonDepth,
                               size_t max_members = kMaxJsonMembers);

}  // namespace lorax
