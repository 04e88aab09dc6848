#include "server/api/json_limits.h"

#include <vector>

namespace lorax {

std::string json_limit_problem(std::string_view text, int max_depth, size_t max_members) {
  std::vector<size_t> members;  // per open object/array: members seen so far (commas + 1 once non-empty)
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        [[fallthrough]];
      default:
        if (!members.empty() && members.back() == 0 && c != ' ' && c != '\n' && c != '\r' && c != '\t' &&
            c != ']' && c != '}')
          members.back() = 1;
        break;
      case '{':
      case '[':
        if (!members.empty() && members.back() == 0) members.back() = 1;
        if (static_cast<int>(members.size()) >= max_depth)
          return "the JSON body nests deeper than " + std::to_string(max_depth) + " levels";
        members.push_back(0);
        break;
      case ',':
        if (!members.empty() && ++members.back() > max_members)
          return "a JSON object or array in the body has more than " + std::to_string(max_members) + " members";
        break;
      case '}':
      case ']':
        if (!members.empty()) members.pop_back();
        break;
    }
  }
  return "";
}

}  // namespace lorax
