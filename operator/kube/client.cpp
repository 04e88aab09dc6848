#include "kube/client.h"

#include <boost/asio/ssl.hpp>
#include <cpprest/containerstream.h>
#include <cpprest/http_client.h>

#include <chrono>

namespace lorax::kube {

using namespace web::http;
using namespace web::http::client;

// Resource part of a path (plural after the last "namespaces/<ns>/" or the api prefix), for metrics.
static std::string resource_label(const std::string& path) {
  std::string p = path.substr(0, path.find('?'));
  std::vector<std::string> parts;
  size_t start = 1;
  while (start <= p.size()) {
    size_t e = p.find('/', start);
    if (e == std::string::npos) e = p.size();
    parts.push_back(p.substr(start, e - start));
    start = e + 1;
  }
  size_t i = parts.size() > 0 && parts[0] == "api" ? 2 : 3;  // skip api/v1 or apis/g/v
  if (i < parts.size() && parts[i] == "namespaces" && i + 2 < parts.size()) i += 2;
  return i < parts.size() ? parts[i] : "discovery";
}

static http_client_config make_config(const ClusterConfig& c, std::chrono::seconds timeout) {
  http_client_config cfg;
  cfg.set_timeout(timeout);
  cfg.set_validate_certificates(!c.insecure);
  std::string ca_file = c.ca_file, ca_data = c.ca_data, cert = c.client_cert_data, key = c.client_key_data,
              cert_file = c.client_cert_file, key_file = c.client_key_file;
  cfg.set_ssl_context_callback([=](boost::asio::ssl::context& ctx) {
    if (!ca_file.empty()) ctx.load_verify_file(ca_file);
    if (!ca_data.empty()) ctx.add_certificate_authority(boost::asio::buffer(ca_data));
    if (!cert.empty()) ctx.use_certificate_chain(boost::asio::buffer(cert));
    if (!key.empty()) ctx.use_private_key(boost::asio::buffer(key), boost::asio::ssl::context::pem);
    if (!cert_file.empty()) ctx.use_certificate_chain_file(cert_file);
    if (!key_file.empty()) ctx.use_private_key_file(key_file, boost::asio::ssl::context::pem);
  });
  return cfg;
}

struct Client::Impl {
  Impl(const ClusterConfig& c, metrics::Registry* reg)
      : rest(utility::conversions::to_string_t(c.server), make_config(c, std::chrono::seconds(30))) {
    if (reg) {
      calls = &reg->counter("lorax_operator_api_requests_total", "Kubernetes API calls by verb, resource and code",
                            {"verb", "resource", "code"});
    }
  }
  http_client rest;
  metrics::CounterFamily* calls = nullptr;
  void count(const std::string& verb, const std::string& path, int code) {
    if (calls) calls->labels({verb, resource_label(path), std::to_string(code)}).inc();
  }
};

Client::Client(std::shared_ptr<ClusterConfig> cfg, metrics::Registry* registry)
    : cfg_(std::move(cfg)), impl_(std::make_unique<Impl>(*cfg_, registry)) {}
Client::~Client() = default;

static http_request make_request(const ClusterConfig& c, const std::string& method, const std::string& path) {
  http_request req(utility::conversions::to_string_t(method));
  req.set_request_uri(utility::conversions::to_string_t(path));
  req.headers().add(U("Accept"), U("application/json"));
  std::string token = c.bearer();
  if (!token.empty()) req.headers().add(U("Authorization"), utility::conversions::to_string_t("Bearer " + token));
  return req;
}

static ApiError api_error(int status, const std::string& method, const std::string& path, const std::string& body) {
  json j = json::parse(body, nullptr, false);
  std::string msg = j.is_object() && j.contains("message") ? j["message"].get<std::string>() : body.substr(0, 200);
  return ApiError(status, method + " " + path + ": " + std::to_string(status) + " " + msg,
                  j.is_discarded() ? json(nullptr) : j);
}

json Client::request(const std::string& method, const std::string& path, const std::string& body,
                     const std::string& content_type) {
  http_request req = make_request(*cfg_, method, path);
  if (!body.empty()) req.set_body(body, content_type);
  http_response resp;
  std::string text;
  try {
    resp = impl_->rest.request(req).get();
    text = resp.extract_utf8string(true).get();
  } catch (const std::exception& e) {
    impl_->count(method, path, 0);
    throw ApiError(0, method + " " + path + ": " + e.what());
  }
  int status = resp.status_code();
  impl_->count(method, path, status);
  if (status < 200 || status >= 300) throw api_error(status, method, path, text);
  if (text.empty()) return json::object();
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) throw ApiError(status, method + " " + path + ": response is not JSON");
  return j;
}

json Client::get(const std::string& path) { return request("GET", path); }
json Client::create(const std::string& path, const json& obj) { return request("POST", path, obj.dump()); }
json Client::update(const std::string& path, const json& obj) { return request("PUT", path, obj.dump()); }
json Client::remove(const std::string& path) { return request("DELETE", path); }

json Client::apply(const std::string& path, const json& obj, const std::string& field_manager) {
  return request("PATCH", path + "?fieldManager=" + field_manager + "&force=true", obj.dump(),
                 "application/apply-patch+yaml");
}

void Client::watch(const std::string& path_and_query, const std::function<bool(const json&)>& on_event,
                   const std::atomic<bool>& stop) {
  // A client per watch: its timeout must outlast the server-side timeoutSeconds.
  http_client client(utility::conversions::to_string_t(cfg_->server), make_config(*cfg_, std::chrono::seconds(600)));
  http_request req = make_request(*cfg_, "GET", path_and_query);
  http_response resp;
  try {
    resp = client.request(req).get();
  } catch (const std::exception& e) {
    impl_->count("WATCH", path_and_query, 0);
    throw ApiError(0, "watch " + path_and_query + ": " + e.what());
  }
  impl_->count("WATCH", path_and_query, resp.status_code());
  if (resp.status_code() != 200)
    throw api_error(resp.status_code(), "WATCH", path_and_query, resp.extract_utf8string(true).get());
  auto body = resp.body();
  while (!stop) {
    concurrency::streams::container_buffer<std::string> line;
    size_t n = 0;
    try {
      n = body.read_line(line).get();
    } catch (const std::exception& e) {
      throw ApiError(0, "watch stream broke: " + std::string(e.what()));
    }
    const std::string& text = line.collection();
    if (n == 0 && text.empty()) {
      if (body.is_eof()) return;
      continue;
    }
    if (text.find_first_not_of(" \r\n") == std::string::npos) continue;
    json ev = json::parse(text, nullptr, false);
    if (ev.is_discarded()) throw ApiError(0, "watch: malformed event");
    if (!on_event(ev)) return;
  }
}

HttpResult http_call(const std::string& method, const std::string& url, const std::string& body, int timeout_s) {
  HttpResult r;
  try {
    http_client_config cfg;
    cfg.set_timeout(std::chrono::seconds(timeout_s));
    web::uri u(utility::conversions::to_string_t(url));
    http_client client(web::uri_builder(u).set_path(U("")).set_query(U("")).to_uri(), cfg);
    http_request req(utility::conversions::to_string_t(method));
    req.set_request_uri(u.resource());
    if (!body.empty()) req.set_body(body, "application/json");
    auto resp = client.request(req).get();
    r.status = resp.status_code();
    r.body = resp.extract_utf8string(true).get();
  } catch (const std::exception& e) {
    r.status = 0;
    r.body = e.what();
  }
  return r;
}

}  // namespace lorax::kube
