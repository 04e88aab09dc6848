// The handler Pistache's transports call. It caps the open connections (503 beyond the
// cap) and vets each request's header block (request_head_problem) before the bytes
// reach the REST handler, which parses and routes them as before.
//
// Why a second handler in front: Pistache 0.0.5 (Debian 12) has no connection limit and
// no hook between the socket and its parser; Http::Handler's onConnection/onInput are
// private overrides that a subclass cannot chain to. Tcp::Handler declares them public,
// so the guard calls the REST handler through that interface.
#pragma once
#include <atomic>
#include <memory>
#include <string>

#include <pistache/http.h>

#include "server/metrics/registry.h"

namespace lorax::server {

// What every transport's guard shares: the cap and the count of open connections.
struct ConnectionBudget {
  ConnectionBudget(int max_connections, size_t max_body_bytes, metrics::Registry& registry);

  const int max_connections;
  const size_t max_body_bytes;  // larger declared bodies are answered 413 before they are read
  std::atomic<int> open{0};
  metrics::Gauge& open_gauge;
  metrics::Counter& refused;  // connections answered 503 because the cap was reached
  metrics::Counter& bad_heads;  // requests refused from their header block
};

class ConnectionGuard : public Pistache::Http::Handler {
 public:
  static std::shared_ptr<ConnectionGuard> create(std::shared_ptr<Pistache::Http::Handler> rest,
                                                 std::shared_ptr<ConnectionBudget> budget);
  ConnectionGuard(std::shared_ptr<Pistache::Http::Handler> rest, std::shared_ptr<ConnectionBudget> budget);

  std::shared_ptr<Pistache::Tcp::Handler> clone() const override;
  // Never called: the REST handler's own parser produces the requests.
  void onRequest(const Pistache::Http::Request& request, Pistache::Http::ResponseWriter response) override;

 private:
  void onConnection(const std::shared_ptr<Pistache::Tcp::Peer>& peer) override;
  void onInput(const char* buffer, size_t len, const std::shared_ptr<Pistache::Tcp::Peer>& peer) override;
  void onDisconnection(const std::shared_ptr<Pistache::Tcp::Peer>& peer) override;

  void lend_transport_to_rest();
  void refuse(const std::shared_ptr<Pistache::Tcp::Peer>& peer, int status, const std::string& message,
              const std::string& error_type);

  std::shared_ptr<Pistache::Http::Handler> rest_;
  std::shared_ptr<ConnectionBudget> budget_;
  std::weak_ptr<ConnectionGuard> self_;
  bool rest_has_transport_ = false;
};

}  // namespace lorax::server
