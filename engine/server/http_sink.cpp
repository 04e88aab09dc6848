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

namespace {

// The engine's Sink for one choice of an HttpSink.
class ChoiceSink : public Sink {
 public:
  ChoiceSink(std::shared_ptr<HttpSink> parent, size_t index) : parent_(std::move(parent)), i_(index) {}
  void on_start() override { parent_->on_start(i_); }
  void on_token(const GeneratedToken& tok) override { parent_->on_token(i_, tok); }
  void on_step_end() override { parent_->on_step_end(i_); }
  void on_finish(const FinishInfo& info) override { parent_->on_finish(i_, info); }
  void on_retired() override { parent_->on_retired(i_); }
  void on_rejected(const std::string& message, int status, const std::string& error_type) override {
    parent_->on_rejected(message, status, error_type);
  }
  bool alive() const override { return parent_->alive(); }

 private:
  std::shared_ptr<HttpSink> parent_;
  size_t i_;
};

}  // namespace

HttpSink::HttpSink(Http::ResponseWriter writer, Tcp::Transport* transport, std::unique_ptr<ResponseFormat> format,
                   bool stream, size_t choices)
    : writer_(std::move(writer)),
      peer_(writer_.getPeer()),
      format_(std::move(format)),
      stream_mode_(stream),
      transport_(transport),
      finished_(choices),
      retired_(choices, false) {}

std::shared_ptr<Sink> HttpSink::choice(size_t i) { return std::make_shared<ChoiceSink>(shared_from_this(), i); }

void HttpSink::refuse(Http::Code code, const std::string& message, const std::string& error_type) {
  done_ = true;
  send_error(writer_, code, message, error_type);
}

bool HttpSink::alive() const { return !done_.load() && !broken_.load() && !peer_.expired(); }

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

void HttpSink::on_start(size_t i) {
  if (!stream_mode_ || done_) return;
  if (!stream_started_) {
    std::string head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\n"
        "Transfer-Encoding: chunked\r\n";
    head += "\r\n";
    write_raw(std::move(head));  // headers go out now, before the first token
    stream_started_ = true;
  }
  write_stream(format_->stream_start(i));
}

void HttpSink::on_token(size_t i, const GeneratedToken& tok) {
  if (stream_mode_ && !done_) write_stream(format_->stream_token(i, tok));
}

void HttpSink::on_step_end(size_t i) {
  if (stream_mode_ && !done_ && !finished_[i]) write_stream(format_->stream_flush(i));
}

void HttpSink::on_finish(size_t i, const FinishInfo& info) {
  if (!done_ && !finished_[i]) finished_[i] = info;
}

void HttpSink::on_retired(size_t i) {
  if (retired_[i]) return;
  retired_[i] = true;
  ++retired_count_;
  if (done_ || !finished_[i]) return;
  const FinishInfo& info = *finished_[i];
  if (info.reason == FinishReason::Cancelled || info.reason == FinishReason::Error) return fail(info);
  if (stream_mode_) write_stream(format_->stream_finish(i, info));
  if (retired_count_ == retired_.size()) deliver();
}

void HttpSink::fail(const FinishInfo& info) {
  done_ = true;
  const bool cancelled = info.reason == FinishReason::Cancelled;
  // Cancelled: either the client left (nothing to send) or the server is shutting down.
  const std::string message = cancelled ? "request cancelled: the server is shutting down" : info.error;
  const std::string type = cancelled ? "overloaded" : "generation";
  if (stream_mode_) {
    for (size_t i = 0; i < finished_.size(); ++i) write_stream(format_->stream_flush(i));
    write_stream(sse_event(nlohmann::json{{"error", message}, {"error_type", type}}.dump(-1, ' ', false, kUtf8Replace)));
    end_stream();
  } else if (!cancelled || (!broken_ && !peer_.expired())) {
    send_error(writer_, cancelled ? Http::Code::Service_Unavailable : Http::Code::Failed_Dependency, message, type);
  }
}

void HttpSink::deliver() {
  done_ = true;
  std::vector<FinishInfo> infos;
  for (auto& f : finished_) infos.push_back(std::move(*f));
  if (stream_mode_) {
    write_stream(format_->stream_end(infos));
    end_stream();
  } else {
    send_json(writer_, Http::Code::Ok, format_->body(infos));
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
