// A small Kubernetes REST client on cpprestsdk: JSON requests, server-side apply,
// and streaming watches. Counts every call by verb and resource for /metrics.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "kube/config.h"
#include "server/metrics/registry.h"

namespace lorax::kube {

using json = nlohmann::json;

struct ApiError : std::runtime_error {
  ApiError(int status, const std::string& what, json body = nullptr)
      : std::runtime_error(what), status(status), body(std::move(body)) {}
  int status;  // HTTP status; 0 for transport failures
  json body;
};

class Client {
public:
  Client(std::shared_ptr<ClusterConfig> cfg, metrics::Registry* registry = nullptr);
  ~Client();

  json get(const std::string& path);
  json create(const std::string& path, const json& obj);
  // PUT; a stale metadata.resourceVersion gives ApiError 409.
  json update(const std::string& path, const json& obj);
  // Server-side apply (application/apply-patch+yaml; JSON is YAML) with our field manager, force=true.
  json apply(const std::string& path, const json& obj, const std::string& field_manager);
  json remove(const std::string& path);

  // GET path (must carry watch=1 etc.) and calls on_event for each JSON line until the
  // server closes the stream, on_event returns false, or stop becomes true (checked per event).
  void watch(const std::string& path_and_query, const std::function<bool(const json&)>& on_event,
             const std::atomic<bool>& stop);

  json request(const std::string& method, const std::string& path, const std::string& body = "",
               const std::string& content_type = "application/json");
  const ClusterConfig& config() const { return *cfg_; }

private:
  struct Impl;
  std::shared_ptr<ClusterConfig> cfg_;
  std::unique_ptr<Impl> impl_;
};

// Plain HTTP JSON call to an arbitrary URL (engine pods' admin API); returns status and body text.
struct HttpResult {
  int status = 0;  // 0: could not connect
  std::string body;
};
HttpResult http_call(const std::string& method, const std::string& url, const std::string& body, int timeout_s);

}  // namespace lorax::kube
