#include "server/api/request_head.h"

#include <cctype>
#include <cstdint>
#include <strings.h>

namespace lorax {
namespace {

bool is_ows(char c) { return c == ' ' || c == '\t'; }

std::string_view trim_ows(std::string_view v) {
  while (!v.empty() && is_ows(v.front())) v.remove_prefix(1);
  while (!v.empty() && is_ows(v.back())) v.remove_suffix(1);
  return v;
}

bool name_is(std::string_view name, std::string_view lower) {
  return name.size() == lower.size() && strncasecmp(name.data(), lower.data(), lower.size()) == 0;
}

HeadProblem bad(std::string message) { return {400, std::move(message)}; }

}  // namespace

size_t request_head_end(std::string_view bytes) {
  const size_t at = bytes.find("\r\n\r\n");
  return at == std::string_view::npos ? at : at + 4;
}

std::optional<HeadProblem> request_head_problem(std::string_view head, size_t max_body_bytes) {
  if (head.size() > kMaxRequestHeadBytes)
    return HeadProblem{431, "the request's header block exceeds " + std::to_string(kMaxRequestHeadBytes) + " bytes"};
  int content_lengths = 0, authorizations = 0;
  bool transfer_encoding = false;
  size_t line_start = head.find("\r\n");
  if (line_start == std::string_view::npos) return std::nullopt;  // no header lines: Pistache judges the request line
  // A lone CR or LF would end a line for some parsers and not for others (RFC 9112 §2.2).
  if (head.substr(0, line_start).find_first_of("\r\n") != std::string_view::npos)
    return bad("a bare CR or LF in the request line");
  line_start += 2;
  while (line_start < head.size()) {
    size_t line_end = head.find("\r\n", line_start);
    if (line_end == std::string_view::npos) line_end = head.size();
    const std::string_view line = head.substr(line_start, line_end - line_start);
    line_start = line_end + 2;
    if (line.empty()) break;  // the blank line
    if (line.find_first_of("\r\n") != std::string_view::npos) return bad("a bare CR or LF in the request headers");
    if (is_ows(line.front())) return bad("obsolete line folding in the request headers is not accepted");
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return bad("a request header line has no colon");
    const std::string_view name = line.substr(0, colon);
    for (char c : name)
      if (is_ows(c)) return bad("a request header name contains whitespace");
    const std::string_view value = trim_ows(line.substr(colon + 1));
    if (name_is(name, "authorization")) {
      if (++authorizations > 1) return bad("more than one Authorization header");
    } else if (name_is(name, "transfer-encoding")) {
      transfer_encoding = true;
    } else if (name_is(name, "content-length")) {
      if (++content_lengths > 1) return bad("more than one Content-Length header");
      if (value.empty()) return bad("Content-Length must be a decimal number of bytes");
      for (char c : value)
        if (!std::isdigit(static_cast<unsigned char>(c))) return bad("Content-Length must be a decimal number of bytes");
      // 15 digits cannot overflow a 64-bit sum below; anything longer is over the limit anyway.
      size_t first = value.find_first_not_of('0');
      const std::string_view digits = first == std::string_view::npos ? std::string_view("0") : value.substr(first);
      uint64_t n = 0;
      if (digits.size() <= 15)
        for (char c : digits) n = n * 10 + static_cast<uint64_t>(c - '0');
      if (digits.size() > 15 || n > max_body_bytes)
        return HeadProblem{413, "the request body exceeds " + std::to_string(max_body_bytes) + " bytes"};
    }
  }
  if (transfer_encoding && content_lengths > 0)
    return bad("a request must not carry both Content-Length and Transfer-Encoding");
  return std::nullopt;
}

}  // namespace lorax
