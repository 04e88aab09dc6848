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
#include <vector>

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

// One HTTP response for `choices` engine requests (OpenAI n/best_of, LoRAX
// best_of): each request gets the Sink choice(i); the stream opens with the
// first choice's start and ends, as does a body, when every choice is retired.
// One choice failing or being refused answers the whole response with its
// error, and the others are then no longer alive (the loop cancels them).
class HttpSink : public std::enable_shared_from_this<HttpSink> {
 public:
  HttpSink(Pistache::Http::ResponseWriter writer, Pistache::Tcp::Transport* transport,
           std::unique_ptr<ResponseFormat> format, bool stream, size_t choices = 1);
  std::shared_ptr<Sink> choice(size_t i);
  bool alive() const;
  // Answers with an error before the request ever reached the engine (queue full, shutting down).
  void refuse(Pistache::Http::Code code, const std::string& message, const std::string& error_type);

  // From choice(i)'s Sink, on the engine thread.
  void on_start(size_t i);
  void on_token(size_t i, const GeneratedToken& tok);
  void on_step_end(size_t i);
  void on_finish(size_t i, const FinishInfo& info);  // kept for on_retired
  void on_retired(size_t i);
  void on_rejected(const std::string& message, int status, const std::string& error_type);

 private:
  void write_raw(std::string bytes);
  void write_stream(const std::string& text);  // one chunk
  void end_stream();
  void fail(const FinishInfo& info);  // a cancelled or failed choice answers for all
  void deliver();                     // every choice finished well

  Pistache::Http::ResponseWriter writer_;
  std::weak_ptr<Pistache::Tcp::Peer> peer_;
  std::unique_ptr<ResponseFormat> format_;
  const bool stream_mode_;
  Pistache::Tcp::Transport* transport_;
  bool stream_started_ = false;
  std::atomic<bool> broken_{false};
  std::atomic<bool> done_{false};  // answered (or refused): what is left of the choices has no one to talk to
  std::vector<std::optional<FinishInfo>> finished_;
  std::vector<bool> retired_;
  size_t retired_count_ = 0;
};

}  // namespace lorax::server
