// Fuzzes the connection guard's header-block check (request_head_end,
// request_head_problem) on raw request bytes. Besides sanitizer reports, a finding is
// a block it accepts although a second, line-by-line reading of the same bytes sees
// two Authorization or Content-Length headers, a Content-Length that is not digits, or
// a declared body over the limit.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>

#include "fuzz_util.h"
#include "server/api/request_head.h"

namespace {

constexpr size_t kMaxBody = 1 << 20;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const size_t end = lorax::request_head_end(bytes);
  if (end == std::string_view::npos) return 0;
  if (end > bytes.size() || bytes.substr(end - 4, 4) != "\r\n\r\n")
    lorax_fuzz::broken("request_head_end", "the end is not just past a blank line");
  const std::string head(bytes.substr(0, end));
  const auto problem = lorax::request_head_problem(head, kMaxBody);
  if (problem) {
    if (problem->status != 400 && problem->status != 413 && problem->status != 431)
      lorax_fuzz::broken("request_head_problem", "status " + std::to_string(problem->status));
    return 0;
  }
  // Accepted: read it again, one "\r\n"-terminated line at a time, headers after the first line.
  std::istringstream in(head);
  std::string line;
  std::getline(in, line);
  int auth = 0, lengths = 0;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) break;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) lorax_fuzz::broken("request_head_problem", "accepted a line without a colon");
    const std::string name = lower(line.substr(0, colon));
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    value.erase(value.find_last_not_of(" \t") + 1);
    if (name == "authorization") ++auth;
    if (name == "content-length") {
      ++lengths;
      if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos)
        lorax_fuzz::broken("request_head_problem", "accepted a Content-Length that is not digits");
      const size_t first = value.find_first_not_of('0');
      if (first != std::string::npos && (value.size() - first > 7 || std::stoull(value.substr(first)) > kMaxBody))
        lorax_fuzz::broken("request_head_problem", "accepted a body over the limit");
    }
  }
  if (auth > 1) lorax_fuzz::broken("request_head_problem", "accepted two Authorization headers");
  if (lengths > 1) lorax_fuzz::broken("request_head_problem", "accepted two Content-Length headers");
  return 0;
}
