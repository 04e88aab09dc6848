// One HTTP(S) GET streamed into a callback (cpprestsdk), for adapter and model
// downloads: redirects followed by hand so the caller can vet every hop, the
// bearer token sent to the first URL's origin only, an optional Range start for
// resumed downloads, and cancellation when the process stops.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

namespace lorax {

// A transport failure (connection, TLS, timeout, cancel) or a refused redirect.
struct HttpGetError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct HttpGetResult {
  int status = 0;               // of the last hop
  int64_t content_length = -1;  // of the body, -1 when unknown
  std::string etag;             // X-Linked-Etag (the hub's LFS sha256) or ETag, unquoted
};

struct HttpGetOptions {
  std::string bearer_token;  // Authorization: Bearer, to the first URL's scheme+host+port only
  int timeout_s = 60;        // per request (connect, and between received bytes)
  int max_redirects = 4;
  uint64_t range_start = 0;  // > 0: asks for bytes range_start.. (the answer may still be a full 200)
  // Called before each request with the URL about to be fetched and whether it is a
  // redirect hop; throws to refuse it (its exception reaches the caller unchanged).
  std::function<void(const std::string& url, bool redirected)> check_url;
  // Called with the final answer's status and headers before its body is read; throws to stop.
  std::function<void(const HttpGetResult&)> on_response;
  std::shared_ptr<std::atomic<bool>> cancelled;  // set: the transfer gives up at once
};


// GETs `url`. For a 200 or 206 answer, every body chunk goes to `sink` as it
// arrives (sink may throw to stop); for any other status the body is not read.
HttpGetResult http_get(const std::string& url, const HttpGetOptions& options,
                       const std::function<void(const uint8_t* data, size_t n)>& sink);

}  // namespace lorax
