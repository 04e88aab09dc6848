// Prints a registry exercising every metric type and the escaping rules, for the
// pytest that validates the output with independent parsers.
#include <cstdio>
#include <limits>

#include "server/metrics/registry.h"

int main() {
  lorax::metrics::Registry r;
  auto& req = r.counter("lorax_requests_total", "Total requests.\nSecond line with a \\ backslash", {"adapter", "code"});
  req.labels({"base", "200"}).inc(3);
  req.labels({"weird \"quoted\"\nnew\\line", "500"}).inc(0.5);
  r.counter("lorax_plain_total", "Counter without labels").labels({}).inc();
  auto& g = r.gauge("lorax_queue_size", "Queued requests", {"pool"});
  g.labels({"a"}).set(-2.25);
  g.labels({"b"}).set(std::numeric_limits<double>::infinity());
  r.gauge("lorax_nan", "NaN gauge").labels({}).set(std::numeric_limits<double>::quiet_NaN());
  auto& h = r.histogram("lorax_request_duration", "Request duration (s)", {"adapter"}, {0.1, 0.5, 1, 2.5});
  for (double v : {0.05, 0.1, 0.3, 0.7, 3.0, 10.0}) h.labels({"base"}).observe(v);
  h.labels({"x\ny"}).observe(1e-9);
  r.histogram("lorax_empty_hist", "No observations").labels({});
  std::fputs(r.serialize().c_str(), stdout);
  return 0;
}
