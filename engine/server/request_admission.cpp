#include "server/route_handlers.h"

#include "server/adapter_routes.h"

namespace lorax::server {

using namespace Pistache;

bool parsed(RouteCall& c, const std::function<void()>& parse) {
  Server::State& s = c.s;
  try {
    parse();
    return true;
  } catch (const ValidationError& e) {
    s.metrics.failure("validation");
    send_error(c.w, Http::Code::Unprocessable_Entity, e.what(), "validation");
  } catch (const NotFound& e) {
    s.metrics.failure("not_found");
    send_error(c.w, Http::Code::Not_Found, e.what(), "not_found");
  } catch (const AdapterError& e) {
    AdapterRouteResult r = adapter_error_result(e);
    s.metrics.failure(r.body["error_type"].get<std::string>());
    send_error(c.w, static_cast<Http::Code>(r.status), e.what(), r.body["error_type"].get<std::string>());
  } catch (const TokenizerError& e) {
    s.metrics.failure("validation");
    send_error(c.w, Http::Code::Unprocessable_Entity, e.what(), "validation");
  }
  return false;
}

void submit_jobs(Server::State& s, const std::shared_ptr<HttpSink>& sink, std::vector<Job> jobs) {
  switch (s.loop.submit(std::move(jobs))) {
    case EngineLoop::Admit::Accepted: return;
    case EngineLoop::Admit::QueueFull:
      s.metrics.failure("overloaded");
      return sink->refuse(Http::Code::Too_Many_Requests, "the request queue is full", "overloaded");
    case EngineLoop::Admit::ShuttingDown:
      s.metrics.failure("overloaded");
      return sink->refuse(Http::Code::Service_Unavailable, "the server is shutting down", "overloaded");
  }
}

}  // namespace lorax::server
