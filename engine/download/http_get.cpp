#include "download/http_get.h"

#include <chrono>
#include <thread>
#include <vector>

#include <cpprest/http_client.h>
#include <cpprest/rawptrstream.h>

namespace lorax {

namespace {

// The result of a cpprestsdk task; when `cancelled` is set meanwhile, the request
// is cancelled (the task then throws) instead of being waited for until its timeout.
template <typename T>
T await(pplx::task<T> task, pplx::cancellation_token_source& cancel, const HttpGetOptions& o) {
  while (!task.is_done()) {
    if (o.cancelled && o.cancelled->load()) cancel.cancel();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return task.get();
}

std::string origin_of(const web::uri& u) {
  return u.scheme() + "://" + u.host() + ":" + std::to_string(u.port());
}

std::string unquoted(std::string v) {
  if (v.rfind("W/", 0) == 0) v = v.substr(2);
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  return v;
}

}  // namespace

HttpGetResult http_get(const std::string& url, const HttpGetOptions& o,
                       const std::function<void(const uint8_t*, size_t)>& sink) {
  using namespace web::http;
  try {
    pplx::cancellation_token_source cancel;
    const std::string origin = origin_of(web::uri(url));
    std::string current = url;
    std::string linked_etag;  // the hub answers LFS files with a redirect that carries their sha256
    for (int hop = 0;; ++hop) {
      if (o.check_url) o.check_url(current, hop > 0);
      client::http_client_config hc;
      hc.set_timeout(std::chrono::seconds(o.timeout_s));
      hc.set_max_redirects(0);
      client::http_client client(current, hc);
      http_request get(methods::GET);
      if (!o.bearer_token.empty() && origin_of(web::uri(current)) == origin)
        get.headers().add("Authorization", "Bearer " + o.bearer_token);
      if (o.range_start > 0) get.headers().add("Range", "bytes=" + std::to_string(o.range_start) + "-");
      http_response resp = await(client.request(get, cancel.get_token()), cancel, o);
      const int code = resp.status_code();
      if (resp.headers().has("X-Linked-Etag") && linked_etag.empty())
        linked_etag = unquoted(resp.headers()["X-Linked-Etag"]);
      if (code >= 300 && code < 400 && resp.headers().has("Location")) {
        if (hop >= o.max_redirects) throw HttpGetError("more than " + std::to_string(o.max_redirects) + " redirects");
        current = web::uri(current).resolve_uri(resp.headers()["Location"]);
        continue;
      }
      HttpGetResult r;
      r.status = code;
      r.etag = !linked_etag.empty() ? linked_etag
                                    : (resp.headers().has("ETag") ? unquoted(resp.headers()["ETag"]) : "");
      const auto length = resp.headers().content_length();
      r.content_length = resp.headers().has("Content-Length") ? static_cast<int64_t>(length) : -1;
      if (code != status_codes::OK && code != status_codes::PartialContent) return r;
      if (o.on_response) try {
          o.on_response(r);
        } catch (...) {
          cancel.cancel();
          throw;
        }
      auto body = resp.body();
      std::vector<uint8_t> chunk(1 << 16);
      for (;;) {
        concurrency::streams::rawptr_buffer<uint8_t> buf(chunk.data(), chunk.size(), std::ios::out);
        const size_t n = await(body.read(buf, chunk.size()), cancel, o);
        if (n == 0) break;
        try {
          sink(chunk.data(), n);
        } catch (...) {
          cancel.cancel();
          throw;
        }
      }
      return r;
    }
  } catch (const HttpGetError&) {
    throw;
  } catch (const web::http::http_exception& e) {
    throw HttpGetError(e.what());
  } catch (const pplx::task_canceled&) {
    throw HttpGetError("cancelled");
  } catch (const web::uri_exception& e) {
    throw HttpGetError(std::string("bad URL: ") + e.what());
  }
}

}  // namespace lorax
