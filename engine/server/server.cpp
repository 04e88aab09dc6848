#include "server/server.h"

#include <chrono>
#include <strings.h>
#include <thread>

#include <openssl/crypto.h>
#include <pistache/endpoint.h>
#include <pistache/http.h>

#include "server/adapter_routes.h"
#include "server/api/json_limits.h"
#include "server/connection_guard.h"
#include "server/route_handlers.h"
#include "server/server_state.h"

namespace lorax::server {

using namespace Pistache;

namespace {

// Who may call a route: anyone, holders of --api-key, or (/metrics) holders of it
// only with --metrics-require-key.
enum class Access { Open, Key, MetricsKey };

struct Route {
  const char* path;
  Http::Method method;
  Access access;
  std::function<void(RouteCall&)> answer;
};

// Every route but the admin /adapters family (adapter_routes.cpp, matched by prefix).
const std::vector<Route>& routes() {
  static const std::vector<Route> table = {
      {"/health", Http::Method::Get, Access::Open, answer_health},
      {"/metrics", Http::Method::Get, Access::MetricsKey, answer_metrics},
      {"/info", Http::Method::Get, Access::Key, answer_info},
      {"/v1/models", Http::Method::Get, Access::Key, answer_models},
      {"/tokenize", Http::Method::Post, Access::Key, answer_tokenize},
      {"/", Http::Method::Post, Access::Key, [](RouteCall& c) { answer_generation(c, Api::Compat); }},
      {"/generate", Http::Method::Post, Access::Key, [](RouteCall& c) { answer_generation(c, Api::Generate); }},
      {"/generate_stream", Http::Method::Post, Access::Key,
       [](RouteCall& c) { answer_generation(c, Api::GenerateStream); }},
      {"/v1/completions", Http::Method::Post, Access::Key, [](RouteCall& c) { answer_generation(c, Api::Completions); }},
      {"/v1/chat/completions", Http::Method::Post, Access::Key, [](RouteCall& c) { answer_generation(c, Api::Chat); }},
      {"/embed", Http::Method::Post, Access::Key, [](RouteCall& c) { answer_embeddings(c, false); }},
      {"/v1/embeddings", Http::Method::Post, Access::Key, [](RouteCall& c) { answer_embeddings(c, true); }},
  };
  return table;
}

class RestHandler : public Http::Handler {
 public:
  HTTP_PROTOTYPE(RestHandler)
  explicit RestHandler(std::shared_ptr<Server::State> state) : s_(std::move(state)) {}

  void onRequest(const Http::Request& req, Http::ResponseWriter w) override {
    try {
      route(req, w);
    } catch (const nlohmann::json::exception&) {
      // A field of a type the parsers did not expect: the client's error, and the
      // message must not echo its (possibly huge) content.
      send_error(w, Http::Code::Unprocessable_Entity, "a request field has the wrong type", "validation");
    } catch (const std::exception& e) {
      send_error(w, Http::Code::Internal_Server_Error, e.what(), "generation");
    }
  }

 private:
  void route(const Http::Request& req, Http::ResponseWriter& w) {
    std::string path = req.resource();
    if (auto q = path.find('?'); q != std::string::npos) path.resize(q);
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    const Http::Method m = req.method();
    if (is_adapter_route(path)) {
      if (!authorized(req)) return unauthorized(w);
      if (m == Http::Method::Post && !within_json_limits(req, w)) return;
      const char* method = m == Http::Method::Get      ? "GET"
                           : m == Http::Method::Post   ? "POST"
                           : m == Http::Method::Delete ? "DELETE"
                                                       : "OTHER";
      AdapterRouteResult r = handle_adapter_route(s_->config.adapters, method, path, req.body());
      return send_json(w, static_cast<Http::Code>(r.status), r.body);
    }
    const auto& table = routes();
    auto it = std::find_if(table.begin(), table.end(), [&](const Route& r) { return path == r.path; });
    if (it == table.end()) return send_error(w, Http::Code::Not_Found, "no route " + path, "not_found");
    // A client with the key learns which method a route takes; one without it, only that it needs the key.
    if (it->access == Access::Key && !authorized(req)) return unauthorized(w);
    if (m != it->method) return method_not_allowed(w);
    if (it->access == Access::MetricsKey && s_->config.metrics_require_key && !authorized(req)) return unauthorized(w);
    if (m == Http::Method::Post && !within_json_limits(req, w)) return;
    RouteCall call{*s_, req, w, transport()};
    it->answer(call);
  }

  static void unauthorized(Http::ResponseWriter& w) {
    send_error(w, Http::Code::Unauthorized, "invalid or missing API key", "unauthorized");
  }

  // Before any parse of the body (see json_limits.h).
  static bool within_json_limits(const Http::Request& req, Http::ResponseWriter& w) {
    const std::string problem = json_limit_problem(req.body());
    if (problem.empty()) return true;
    send_error(w, Http::Code::Unprocessable_Entity, problem, "validation");
    return false;
  }

  static void method_not_allowed(Http::ResponseWriter& w) {
    send_error(w, Http::Code::Method_Not_Allowed, "method not allowed", "validation");
  }

  // `Authorization: Bearer KEY`, the scheme case-insensitive (RFC 9110 §11.1), the
  // key compared in constant time so its prefix cannot be guessed from timings.
  bool authorized(const Http::Request& req) const {
    const std::string& key = s_->config.api_key;
    if (key.empty()) return true;
    auto h = req.headers().tryGetRaw("Authorization");
    if (!h) return false;
    const std::string& v = h->value();
    if (v.size() < 7 || strncasecmp(v.c_str(), "Bearer ", 7) != 0) return false;
    const std::string_view given = std::string_view(v).substr(7);
    return given.size() == key.size() && CRYPTO_memcmp(given.data(), key.data(), key.size()) == 0;
  }

  std::shared_ptr<Server::State> s_;
};

}  // namespace

Server::Server(ServerConfig config, Engine& engine, std::shared_ptr<const Tokenizer> tokenizer)
    : state_(std::make_shared<State>(std::move(config), engine, std::move(tokenizer))) {}

Server::~Server() {
  if (state_->endpoint) shutdown(std::chrono::milliseconds(0));
}

void Server::start() {
  State& s = *state_;
  s.loop.start();
  Address addr(s.config.host, Port(static_cast<uint16_t>(s.config.port)));
  s.endpoint = std::make_unique<Http::Endpoint>(addr);
  constexpr size_t kMaxRequestBytes = 16 << 20;
  auto opts = Http::Endpoint::options()
                  .threads(s.config.http_threads)
                  .flags(Tcp::Options::ReuseAddr)
                  .maxRequestSize(kMaxRequestBytes)
                  .maxResponseSize(64 << 20)
                  .headerTimeout(std::chrono::seconds(10))
                  .bodyTimeout(std::chrono::seconds(60))
                  // Reaps connections idle between requests; a peer streaming a response
                  // is not idle (HttpSink marks it idle only when its stream ends).
                  .keepaliveTimeout(std::chrono::milliseconds(static_cast<long long>(s.config.keepalive_s * 1000)));
  s.endpoint->init(opts);
  auto budget = std::make_shared<ConnectionBudget>(s.config.max_connections, kMaxRequestBytes, s.registry);
  s.endpoint->setHandler(ConnectionGuard::create(Http::make_handler<RestHandler>(state_), std::move(budget)));
  s.endpoint->serveThreaded();
  s.ready = true;
}

uint16_t Server::port() const { return state_->endpoint ? static_cast<uint16_t>(state_->endpoint->getPort()) : 0; }

bool Server::shutdown(std::chrono::milliseconds timeout) {
  State& s = *state_;
  s.ready = false;
  s.loop.close();
  const bool drained = s.loop.drain(Clock::now() + timeout);
  s.loop.stop();  // cancels what is left; its clients get a 503 or the end of their stream
  // Let the reactor threads put the last queued writes on the wire.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  if (s.endpoint) {
    s.endpoint->shutdown();
    s.endpoint.reset();
  }
  return drained;
}

}  // namespace lorax::server
