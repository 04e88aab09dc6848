#include "server/metrics/registry.h"

#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "server/metrics/text_format.h"

using namespace lorax::metrics;

// Expected strings below follow the text format spec 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/); the sample binary is
// also checked against promtool and prometheus_client in tests/metrics/.

TEST(Metrics, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  EXPECT_EQ(escape_help("x\\y\nz\""), "x\\\\y\\nz\"");  // quotes stay in HELP
}

TEST(Metrics, FormatsSpecialValues) {
  EXPECT_EQ(format_value(INFINITY), "+Inf");
  EXPECT_EQ(format_value(-INFINITY), "-Inf");
  EXPECT_EQ(format_value(NAN), "NaN");
  EXPECT_EQ(std::stod(format_value(0.1)), 0.1);  // round-trips
}

TEST(Metrics, CounterGaugeSerialize) {
  Registry r;
  r.counter("c_total", "help", {"a"}).labels({"x"}).inc(2);
  r.gauge("g", "gh").labels({}).set(1.5);
  EXPECT_EQ(r.serialize(),
            "# HELP c_total help\n# TYPE c_total counter\nc_total{a=\"x\"} 2\n"
            "# HELP g gh\n# TYPE g gauge\ng 1.5\n");
}

TEST(Metrics, HistogramIsCumulativeWithInclusiveBounds) {
  Registry r;
  auto& h = r.histogram("h", "x", {}, {1, 2}).labels({});
  h.observe(1);  // le="1" is inclusive
  h.observe(1.5);
  h.observe(5);
  auto s = h.snapshot();
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(s.count, 3u);
  EXPECT_DOUBLE_EQ(s.sum, 7.5);
  std::string text = r.serialize();
  EXPECT_NE(text.find("h_bucket{le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("h_sum 7.5\nh_count 3\n"), std::string::npos);
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
  EXPECT_THROW(r.gauge("c", "x", {"a"}), std::invalid_argument);  // type clash
  EXPECT_EQ(&r.counter("c", "x", {"a"}), &c);                    // same family again
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
  EXPECT_EQ(h.labels({"same"}).snapshot().count, 40000u);
}
