// Our layer over prometheus-cpp (server/metrics/registry.h): label arity, one
// family per name, no negative counter increments, children removed, HELP
// escaped, and nothing lost under concurrent updates. The exposition text itself
// is prometheus-cpp's; tests/unit/metrics/test_metrics_exposition.py checks it
// with promtool and the prometheus_client parser.
#include "server/metrics/registry.h"

#include <gtest/gtest.h>

#include <thread>

using namespace lorax::metrics;

TEST(Metrics, SerializesThroughPrometheusCpp) {
  Registry r;
  r.counter("c_total", "help", {"a"}).labels({"x"}).inc(2);
  r.gauge("g", "gh").labels({}).set(1.5);
  const std::string text = r.serialize();
  EXPECT_NE(text.find("# TYPE c_total counter\nc_total{a=\"x\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE g gauge\ng 1.5\n"), std::string::npos) << text;
}

TEST(Metrics, EscapesHelp) {
  Registry r;
  r.counter("e_total", "x\\y\nz\"").labels({});
  EXPECT_NE(r.serialize().find("# HELP e_total x\\\\y\\nz\"\n"), std::string::npos) << r.serialize();
}

TEST(Metrics, HistogramCountsInclusiveBounds) {
  Registry r;
  auto& h = r.histogram("h", "x", {}, {1, 2}).labels({});
  h.observe(1);  // le="1" is inclusive
  h.observe(1.5);
  h.observe(5);
  EXPECT_EQ(h.count(), 3u);
  const std::string text = r.serialize();
  EXPECT_NE(text.find("h_bucket{le=\"1\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("h_bucket{le=\"+Inf\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("h_sum 7.5\n"), std::string::npos) << text;
}

TEST(Metrics, RemovedChildrenLeaveTheExposition) {
  Registry r;
  auto& g = r.gauge("lorax_adapter_loaded", "x", {"adapter_id"});
  g.labels({"a"}).set(1);
  g.labels({"b"}).set(1);
  g.remove({"a"});
  g.remove({"never-there"});
  const std::string text = r.serialize();
  EXPECT_EQ(text.find("adapter_id=\"a\""), std::string::npos) << text;
  EXPECT_NE(text.find("adapter_id=\"b\""), std::string::npos) << text;
  g.labels({"a"}).set(2);  // a new series of the same labels
  EXPECT_NE(r.serialize().find("lorax_adapter_loaded{adapter_id=\"a\"} 2"), std::string::npos);
}

TEST(Metrics, RejectsBadInput) {
  Registry r;
  EXPECT_THROW(r.counter("1bad", "x"), std::invalid_argument);
  EXPECT_THROW(r.counter("ok", "x", {"bad-label"}), std::invalid_argument);
  EXPECT_THROW(r.histogram("h", "x", {"le"}), std::invalid_argument);
  EXPECT_THROW(r.histogram("h2", "x", {}, {2, 1}), std::invalid_argument);
  EXPECT_THROW(r.histogram("h3", "x", {}, {}), std::invalid_argument);
  auto& c = r.counter("c", "x", {"a"});
  EXPECT_THROW(c.labels({}), std::invalid_argument);
  EXPECT_THROW(c.labels({"v"}).inc(-1), std::invalid_argument);
  EXPECT_THROW(r.gauge("c", "x", {"a"}), std::invalid_argument);    // type clash
  EXPECT_THROW(r.counter("c", "x", {"b"}), std::invalid_argument);  // other labels
  EXPECT_EQ(&r.counter("c", "x", {"a"}), &c);                      // same family again
}

TEST(Metrics, ConcurrentUpdatesAreNotLost) {
  Registry r;
  auto& c = r.counter("c", "x", {"t"});
  auto& h = r.histogram("h", "x", {"t"}, {0.5});
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c.labels({"same"}).inc();
        h.labels({"same"}).observe(1);
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(c.labels({"same"}).value(), 40000);
  EXPECT_EQ(h.labels({"same"}).count(), 40000u);
}
