#include "server/connection_guard.h"

#include <stdexcept>

#include <nlohmann/json.hpp>
#include <pistache/peer.h>
#include <pistache/transport.h>

#include "server/api/request_head.h"
#include "server/http_sink.h"

namespace lorax::server {

using namespace Pistache;

namespace {

constexpr const char* kPeerStateKey = "lorax.connection";

// One per connection, in the peer's data. It counts the connection for as long as the
// peer lives: Transport::removePeer (the keep-alive and header timeouts) closes a
// socket without calling onDisconnection, so the peer's lifetime is the reliable end.
struct PeerState {
  explicit PeerState(std::shared_ptr<ConnectionBudget> b) : budget(std::move(b)) {
    over_cap = budget->open.fetch_add(1) + 1 > budget->max_connections;
    budget->open_gauge.inc();
  }
  ~PeerState() {
    budget->open.fetch_sub(1);
    budget->open_gauge.dec();
  }
  PeerState(const PeerState&) = delete;
  PeerState& operator=(const PeerState&) = delete;

  std::shared_ptr<ConnectionBudget> budget;
  std::string head;      // the next request's header bytes, held back until the block is complete
  bool over_cap = false;  // opened while the cap was reached: answered 503 and closed
  bool closing = false;   // answered and being shut down: whatever else arrives is dropped
};

std::shared_ptr<PeerState> state_of(const std::shared_ptr<Tcp::Peer>& peer) {
  return std::static_pointer_cast<PeerState>(peer->tryGetData(kPeerStateKey));
}

Tcp::Handler& as_tcp(Http::Handler& h) { return h; }

}  // namespace

ConnectionBudget::ConnectionBudget(int max_conn, size_t max_body, metrics::Registry& r)
    : max_connections(max_conn),
      max_body_bytes(max_body),
      open_gauge(r.gauge("lorax_http_connections", "Open HTTP connections").labels({})),
      refused(r.counter("lorax_http_connections_refused_total",
                        "Connections answered 503 because --max-connections were open").labels({})),
      bad_heads(r.counter("lorax_http_bad_request_heads_total",
                          "Requests refused for their headers (Content-Length, Authorization, size)").labels({})) {}

std::shared_ptr<ConnectionGuard> ConnectionGuard::create(std::shared_ptr<Http::Handler> rest,
                                                         std::shared_ptr<ConnectionBudget> budget) {
  auto guard = std::make_shared<ConnectionGuard>(std::move(rest), std::move(budget));
  guard->self_ = guard;
  return guard;
}

ConnectionGuard::ConnectionGuard(std::shared_ptr<Http::Handler> rest, std::shared_ptr<ConnectionBudget> budget)
    : rest_(std::move(rest)), budget_(std::move(budget)) {}

std::shared_ptr<Tcp::Handler> ConnectionGuard::clone() const {
  // Each transport (reactor thread) gets its own pair; the limits set on this one by
  // Http::Endpoint go to both, since the REST handler's parser is the one that reads.
  auto rest = std::static_pointer_cast<Http::Handler>(rest_->clone());
  rest->setMaxRequestSize(getMaxRequestSize());
  rest->setMaxResponseSize(getMaxResponseSize());
  auto copy = create(std::move(rest), budget_);
  copy->setMaxRequestSize(getMaxRequestSize());
  copy->setMaxResponseSize(getMaxResponseSize());
  return copy;
}

void ConnectionGuard::onRequest(const Http::Request&, Http::ResponseWriter response) {
  response.send(Http::Code::Internal_Server_Error);
}

void ConnectionGuard::lend_transport_to_rest() {
  if (rest_has_transport_) return;
  // Pistache gives a handler its transport only through Transport::init, which also
  // makes it the transport's handler: the REST handler gets the transport (its
  // responses and HttpSink write through it) and the guard takes its place back. Both
  // calls run on this transport's reactor thread, the only one that reads the handler.
  auto self = self_.lock();
  if (!self) throw std::logic_error("a ConnectionGuard must come from create() or clone()");
  Tcp::Transport* t = transport();
  t->init(rest_);
  t->init(self);
  rest_has_transport_ = true;
}

void ConnectionGuard::onConnection(const std::shared_ptr<Tcp::Peer>& peer) {
  lend_transport_to_rest();
  as_tcp(*rest_).onConnection(peer);  // the request parser, which the transport's timeouts read too
  auto state = std::make_shared<PeerState>(budget_);
  peer->putData(kPeerStateKey, state);
  // Answered at once, not after its request arrives: a socket that never sends one
  // would hold a descriptor until the header timeout, and enough of them exhaust the
  // descriptor table below the cap (accept() fails and every client hangs).
  if (state->over_cap) {
    budget_->refused.inc();
    refuse(peer, 503, "too many open connections (the server allows " + std::to_string(budget_->max_connections) + ")",
           "overloaded");
  }
}

void ConnectionGuard::onDisconnection(const std::shared_ptr<Tcp::Peer>& peer) { as_tcp(*rest_).onDisconnection(peer); }

void ConnectionGuard::onInput(const char* buffer, size_t len, const std::shared_ptr<Tcp::Peer>& peer) {
  const std::shared_ptr<PeerState> state = state_of(peer);
  if (!state) return as_tcp(*rest_).onInput(buffer, len, peer);
  if (state->closing) return;
  // Inside a body whose header block was vetted: the parser is past the request line.
  if (Http::Handler::getParser(peer)->step()->id() != Http::Private::RequestLineStep::Id)
    return as_tcp(*rest_).onInput(buffer, len, peer);

  state->head.append(buffer, len);
  const size_t end = request_head_end(state->head);
  if (end == std::string::npos) {
    if (state->head.size() > kMaxRequestHeadBytes) {
      budget_->bad_heads.inc();
      refuse(peer, 431, "the request's header block exceeds " + std::to_string(kMaxRequestHeadBytes) + " bytes",
             "validation");
    }
    return;
  }
  if (auto problem = request_head_problem(std::string_view(state->head).substr(0, end), budget_->max_body_bytes)) {
    budget_->bad_heads.inc();
    return refuse(peer, problem->status, problem->message, "validation");
  }
  std::string bytes;
  bytes.swap(state->head);
  as_tcp(*rest_).onInput(bytes.data(), bytes.size(), peer);
}

void ConnectionGuard::refuse(const std::shared_ptr<Tcp::Peer>& peer, int status, const std::string& message,
                             const std::string& error_type) {
  if (auto state = state_of(peer)) {
    state->closing = true;
    std::string().swap(state->head);
  }
  const std::string body = nlohmann::json{{"error", message}, {"error_type", error_type}}.dump();
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + Http::codeString(static_cast<Http::Code>(status)) +
                    "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nConnection: close\r\n\r\n" + body;
  const size_t n = out.size();
  auto sent = transport()->asyncWrite(peer->fd(), RawBuffer(std::move(out), n));
  close_once_sent(sent, peer);
}

}  // namespace lorax::server
