// The header block of one HTTP/1.1 request, read from the raw bytes before Pistache's
// parser sees them. Written by hand because no packaged parser sits in front of Pistache
// (0.0.5, Debian 12), and Pistache answers a malformed Content-Length with a plain-text
// 500 that echoes an exception and keeps only one of two Authorization headers. Only the
// headers that frame the body or carry credentials are checked; the rest of the parsing
// stays Pistache's.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace lorax {

// Larger header blocks are answered 431 (nginx allows 32 KiB, Node 16 KiB).
inline constexpr size_t kMaxRequestHeadBytes = 64 << 10;

// The index just past the blank line that ends the header block, or npos when the
// block is not complete yet.
size_t request_head_end(std::string_view bytes);

struct HeadProblem {
  int status;           // 400, 413 or 431
  std::string message;  // names the header, never echoes its value
};

// `head`: a whole header block (request line, header lines, blank line).
// Refused (RFC 9112 §5 and §6): a Content-Length that is not one decimal number, more
// than one Content-Length, Content-Length together with Transfer-Encoding (the request
// smuggling shape), a header line without a colon or with whitespace before it, an
// obsolete folded line, a lone CR or LF inside a line, a declared body over `max_body_bytes` (413), more than one
// Authorization header, a block over kMaxRequestHeadBytes (431).
std::optional<HeadProblem> request_head_problem(std::string_view head, size_t max_body_bytes);

}  // namespace lorax
