// The server's route handlers, each answering one request on its HTTP thread
// (generation and embeddings hand the work to the engine loop and return).
// server.cpp's route table picks one after the path, method, API key and JSON
// limits were checked.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include <pistache/http.h>
#include <pistache/transport.h>

#include "server/http_sink.h"
#include "server/server_state.h"

namespace lorax::server {

struct RouteCall {
  Server::State& s;
  const Pistache::Http::Request& req;
  Pistache::Http::ResponseWriter& w;
  Pistache::Tcp::Transport* transport;  // the connection's, for responses written from the engine thread
};

enum class Api { Compat, Generate, GenerateStream, Completions, Chat };

void answer_health(RouteCall& c);
void answer_metrics(RouteCall& c);
void answer_info(RouteCall& c);
void answer_models(RouteCall& c);
void answer_tokenize(RouteCall& c);
void answer_generation(RouteCall& c, Api api);
void answer_embeddings(RouteCall& c, bool openai);

// Runs `parse` (this HTTP thread's validation of a request); a client error it
// throws is answered and counted here, and false is returned.
bool parsed(RouteCall& c, const std::function<void()>& parse);
// Hands a request's engine jobs (all or none) to the engine loop; a full queue or a shutdown is answered.
void submit_jobs(Server::State& s, const std::shared_ptr<HttpSink>& sink, std::vector<Job> jobs);

}  // namespace lorax::server
