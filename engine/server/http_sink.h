// The Sink that writes one request's response through Pistache, from the engine
// thread: a JSON body when the request finishes, or an SSE stream (chunked) with
// one write per token. Every write goes through Transport::asyncWrite, which only
// queues it for the connection's reactor thread, so no HTTP thread is held while a
// request runs. (Pistache's ResponseStream::flush also drains the transport's queue
// on the calling thread, which races with the reactor and aborts the process, so
// streams are framed here and queued the same way.) The client is gone when
// Pistache has dropped its peer (connection closed).
#pragma once
#include <atomic>
#include <memory>
#include <optional>

#include <pistache/http.h>
#include <pistache/transport.h>

#include "server/engine_loop.h"
#include "server/response_formats.h"

namespace lorax::server {

// Sends `{"error": message, "error_type": type}` with `code`; never throws.
void send_error(Pistache::Http::ResponseWriter& writer, Pistache::Http::Code code, const std::string& message,
                const std::string& error_type);
void send_json(Pistache::Http::ResponseWriter& writer, Pistache::Http::Code code, const nlohmann::json& body);
// Sends a body that is not JSON (/health, /metrics), closing after it when the client asked.
void send_text(Pistache::Http::ResponseWriter& writer, Pistache::Http::Code code, const std::string& body,
               const Pistache::Http::Mime::MediaType& type);

// Shuts the connection down once `sent` is on the wire (the reactor then frees the peer).
void close_once_sent(Pistache::Async::Promise<ssize_t>& sent, std::weak_ptr<Pistache::Tcp::Peer> peer);

class HttpSink : public Sink {
 public:
  HttpSink(Pistache::Http::ResponseWriter writer, Pistache::Tcp::Transport* transport,
           std::unique_ptr<ResponseFormat> format, bool stream);
  void on_start() override;
  void on_token(const GeneratedToken& tok) override;
  void on_step_end() override;
  void on_finish(const FinishInfo& info) override;  // keeps `info` for on_retired
  void on_retired() override;
  void on_rejected(const std::string& message, int status, const std::string& error_type) override;
  bool alive() const override;
  // Answers with an error before the request ever reached the engine (queue full, shutting down).
  void refuse(Pistache::Http::Code code, const std::string& message, const std::string& error_type);

 private:
  void write_raw(std::string bytes);
  void write_stream(const std::string& text);  // one chunk
  void end_stream();
  void deliver(const FinishInfo& info);

  Pistache::Http::ResponseWriter writer_;
  std::weak_ptr<Pistache::Tcp::Peer> peer_;
  std::unique_ptr<ResponseFormat> format_;
  const bool stream_mode_;
  Pistache::Tcp::Transport* transport_;
  bool stream_started_ = false;
  std::atomic<bool> broken_{false};
  bool done_ = false;
  std::optional<FinishInfo> finished_;
};

}  // namespace lorax::server
