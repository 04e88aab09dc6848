#include "server/http_sink.h"

#include <cstdio>

#include <sys/socket.h>

#include <pistache/peer.h>

namespace lorax::server {

using namespace Pistache;

bool close_requested(Http::ResponseWriter& writer) {
  // Pistache copies the request's `Connection: close` (or HTTP/1.0's default) into
  // the response headers, and then keeps the socket open: close-reading clients hung.
  auto c = writer.headers().tryGet<Http::Header::Connection>();
  return c && c->control() == Http::ConnectionControl::Close;
}

void close_once_sent(Async::Promise<ssize_t>& sent, std::weak_ptr<Tcp::Peer> peer) {
  // shutdown(), not close(): the reactor owns the descriptor, sees the hang-up and frees the peer.
  sent.then([peer](ssize_t) {
    if (auto p = peer.lock()) ::shutdown(p->fd(), SHUT_RDWR);
  }, Async::IgnoreException);
}

void send_json(Http::ResponseWriter& writer, Http::Code code, const nlohmann::json& body) {
  try {
    const bool close = close_requested(writer);
    auto sent = writer.send(code, body.dump(-1, ' ', false, kUtf8Replace), MIME(Application, Json));
    if (close) close_once_sent(sent, writer.getPeer());
  } catch (const std::exception&) {
    // The client is gone; nothing to tell it.
  }
}

void send_text(Http::ResponseWriter& writer, Http::Code code, const std::string& body,
               const Http::Mime::MediaType& type) {
  try {
    const bool close = close_requested(writer);
    auto sent = writer.send(code, body, type);
    if (close) close_once_sent(sent, writer.getPeer());
  } catch (const std::exception&) {
  }
}

void send_error(Http::ResponseWriter& writer, Http::Code code, const std::string& message,
                const std::string& error_type) {
  send_json(writer, code, {{"error", message}, {"error_type", error_type}});
}

HttpSink::HttpSink(Http::ResponseWriter writer, Tcp::Transport* transport, std::unique_ptr<ResponseFormat> format,
                   bool stream)
    : writer_(std::move(writer)),
      peer_(writer_.getPeer()),
      format_(std::move(format)),
      stream_mode_(stream),
      transport_(transport) {}

void HttpSink::refuse(Http::Code code, const std::string& message, const std::string& error_type) {
  done_ = true;
  send_error(writer_, code, message, error_type);
}

bool HttpSink::alive() const { return !broken_.load() && !peer_.expired(); }

void HttpSink::write_raw(std::string bytes) {
  if (broken_) return;
  auto peer = peer_.lock();
  if (!peer) {
    broken_ = true;
    return;
  }
  const size_t n = bytes.size();
  transport_->asyncWrite(peer->fd(), Pistache::RawBuffer(std::move(bytes), n));
}

void HttpSink::write_stream(const std::string& text) {
  if (!stream_started_ || text.empty()) return;
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", text.size());
  write_raw(size + text + "\r\n");
}

void HttpSink::end_stream() {
  if (!stream_started_) return;
  // Not shut down after a stream even when the client asked (Connection: close):
  // doing so made a benchmark stream end without events once under load, cause not found.
  write_raw("0\r\n\r\n");
  stream_started_ = false;
  if (auto peer = peer_.lock()) peer->setIdle(true);  // the keep-alive timer may reap it again
}

void HttpSink::on_start() {
  if (!stream_mode_ || stream_started_) return;
  std::string head =
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\n"
      "Transfer-Encoding: chunked\r\n";
  head += "\r\n";
  write_raw(std::move(head));  // headers go out now, before the first token
  stream_started_ = true;
  write_stream(format_->stream_start());
}

void HttpSink::on_token(const GeneratedToken& tok) {
  if (stream_mode_) write_stream(format_->stream_token(tok));
}

void HttpSink::on_step_end() {
  if (stream_mode_ && !done_) write_stream(format_->stream_flush());
}

void HttpSink::on_finish(const FinishInfo& info) {
  if (done_) return;
  done_ = true;
  finished_ = info;
}

void HttpSink::on_retired() {
  if (!finished_) return;
  FinishInfo info = std::move(*finished_);
  finished_.reset();
  deliver(info);
}

void HttpSink::deliver(const FinishInfo& info) {
  if (info.reason == FinishReason::Cancelled) {
    // Either the client left (nothing to send) or the server is shutting down.
    if (stream_mode_) {
      write_stream(format_->stream_flush());
      write_stream(sse_event(nlohmann::json{{"error", "request cancelled: the server is shutting down"},
                                            {"error_type", "overloaded"}}
                                 .dump(-1, ' ', false, kUtf8Replace)));
      end_stream();
    } else if (alive()) {
      send_error(writer_, Http::Code::Service_Unavailable, "request cancelled: the server is shutting down",
                 "overloaded");
    }
    return;
  }
  if (info.reason == FinishReason::Error) {
    if (stream_mode_) {
      write_stream(format_->stream_flush());
      write_stream(sse_event(nlohmann::json{{"error", info.error}, {"error_type", "generation"}}.dump(-1, ' ', false, kUtf8Replace)));
      end_stream();
    } else {
      send_error(writer_, Http::Code::Failed_Dependency, info.error, "generation");
    }
    return;
  }
  if (stream_mode_) {
    write_stream(format_->stream_finish(info));
    end_stream();
  } else {
    send_json(writer_, Http::Code::Ok, format_->body(info));
  }
}

void HttpSink::on_rejected(const std::string& message, int status, const std::string& error_type) {
  if (done_) return;
  done_ = true;
  if (stream_started_) {
    write_stream(sse_event(
        nlohmann::json{{"error", message}, {"error_type", error_type}}.dump(-1, ' ', false, kUtf8Replace)));
    end_stream();
  } else {
    send_error(writer_, static_cast<Http::Code>(status), message, error_type);
  }
}

}  // namespace lorax::server
