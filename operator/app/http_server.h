// /healthz, /readyz and /metrics on a small cpprestsdk http_listener.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "server/metrics/registry.h"

namespace lorax::op {

class HttpServer {
public:
  HttpServer(const std::string& host, int port, metrics::Registry& reg, std::function<bool()> ready);
  ~HttpServer();

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lorax::op
