#include "app/http_server.h"

#include <cpprest/http_listener.h>

namespace lorax::op {

using namespace web::http;
using web::http::experimental::listener::http_listener;

struct HttpServer::Impl {
  std::unique_ptr<http_listener> listener;
};

HttpServer::HttpServer(const std::string& host, int port, metrics::Registry& reg, std::function<bool()> ready)
    : impl_(std::make_unique<Impl>()) {
  std::string url = "http://" + host + ":" + std::to_string(port);
  impl_->listener = std::make_unique<http_listener>(utility::conversions::to_string_t(url));
  impl_->listener->support(methods::GET, [&reg, ready](http_request req) {
    std::string path = utility::conversions::to_utf8string(req.relative_uri().path());
    if (path == "/healthz") req.reply(status_codes::OK, "ok\n", "text/plain");
    else if (path == "/readyz") {
      bool ok = ready();
      req.reply(ok ? status_codes::OK : status_codes::ServiceUnavailable, ok ? "ok\n" : "not ready\n", "text/plain");
    } else if (path == "/metrics") req.reply(status_codes::OK, reg.serialize(), metrics::kContentType);
    else req.reply(status_codes::NotFound, "not found\n", "text/plain");
  });
  impl_->listener->open().wait();
}

HttpServer::~HttpServer() {
  try {
    impl_->listener->close().wait();
  } catch (...) {
  }
}

}  // namespace lorax::op
