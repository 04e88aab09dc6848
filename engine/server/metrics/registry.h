// Metrics of the engine and the operator, on prometheus-cpp's core (Debian 12's
// prometheus-cpp-dev: its Registry, families and text serializer). This layer
// only adds what our callers rely on: families declared with their label names
// (a child is named by values in that order, the arity checked), re-registering a
// name returns the same family or refuses another shape, counters refuse negative
// increments, HELP text escaped as the exposition format requires (prometheus-cpp
// 1.0 writes it raw).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace lorax::metrics {

class Counter {
public:
  explicit Counter(prometheus::Counter& c) : c_(c) {}
  // Counters only go up; a negative increment throws std::invalid_argument.
  void inc(double v = 1.0);
  double value() const { return c_.Value(); }

private:
  prometheus::Counter& c_;
};

class Gauge {
public:
  explicit Gauge(prometheus::Gauge& g) : g_(g) {}
  void set(double v) { g_.Set(v); }
  void inc(double v = 1.0) { g_.Increment(v); }
  void dec(double v = 1.0) { g_.Decrement(v); }
  double value() const { return g_.Value(); }

private:
  prometheus::Gauge& g_;
};

class Histogram {
public:
  explicit Histogram(prometheus::Histogram& h) : h_(h) {}
  void observe(double v) { h_.Observe(v); }
  uint64_t count() const;

private:
  prometheus::Histogram& h_;
};

// Default buckets of the Prometheus client libraries (seconds).
std::vector<double> default_buckets();
// start, start*factor, ... (count bounds).
std::vector<double> exponential_buckets(double start, double factor, int count);

enum class Type { Counter, Gauge, Histogram };

class FamilyBase {
public:
  FamilyBase(std::string name, std::vector<std::string> label_names, Type type)
      : name_(std::move(name)), label_names_(std::move(label_names)), type_(type) {}
  virtual ~FamilyBase() = default;
  const std::string& name() const { return name_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  Type type() const { return type_; }

protected:
  prometheus::Labels labels_of(const std::vector<std::string>& values) const;
  std::string name_;
  std::vector<std::string> label_names_;
  Type type_;
  mutable std::mutex mu_;
};

// A metric family: one child per distinct tuple of label values.
template <class T, class P>
class Family : public FamilyBase {
public:
  Family(prometheus::Family<P>& family, std::string name, std::vector<std::string> label_names, Type type,
         std::vector<double> buckets = {})
      : FamilyBase(std::move(name), std::move(label_names), type), family_(family), buckets_(std::move(buckets)) {}

  // Returns the child for these label values (in label-name order), creating it.
  // The reference stays valid until remove() or the registry's end.
  T& labels(const std::vector<std::string>& values) {
    const prometheus::Labels labels = labels_of(values);
    std::lock_guard lock(mu_);
    auto it = children_.find(values);
    if (it == children_.end()) it = children_.emplace(values, std::make_unique<T>(add(labels))).first;
    return *it->second;
  }
  // Drops the child for these label values (a series that no longer exists, e.g.
  // an unloaded adapter); references to it must not be used afterwards.
  void remove(const std::vector<std::string>& values) {
    const prometheus::Labels labels = labels_of(values);
    std::lock_guard lock(mu_);
    auto it = children_.find(values);
    if (it == children_.end()) return;
    family_.Remove(&add(labels));  // Add returns the existing child for these labels
    children_.erase(it);
  }

private:
  P& add(const prometheus::Labels& labels) {
    if constexpr (std::is_same_v<P, prometheus::Histogram>)
      return family_.Add(labels, prometheus::Histogram::BucketBoundaries(buckets_));
    else
      return family_.Add(labels);
  }
  prometheus::Family<P>& family_;
  std::vector<double> buckets_;
  std::map<std::vector<std::string>, std::unique_ptr<T>> children_;
};

using CounterFamily = Family<Counter, prometheus::Counter>;
using GaugeFamily = Family<Gauge, prometheus::Gauge>;
using HistogramFamily = Family<Histogram, prometheus::Histogram>;

class Registry {
public:
  // Registering an existing name again returns the same family when type and
  // label names match, and throws std::invalid_argument otherwise.
  CounterFamily& counter(const std::string& name, const std::string& help,
                         const std::vector<std::string>& label_names = {});
  GaugeFamily& gauge(const std::string& name, const std::string& help, const std::vector<std::string>& label_names = {});
  HistogramFamily& histogram(const std::string& name, const std::string& help,
                             const std::vector<std::string>& label_names = {},
                             std::vector<double> buckets = default_buckets());
  // Text exposition format 0.0.4 (Content-Type: text/plain; version=0.0.4).
  std::string serialize() const;

private:
  FamilyBase* find(const std::string& name, Type type, const std::vector<std::string>& labels);
  void check_names(const std::string& name, const std::vector<std::string>& labels, Type type) const;
  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<FamilyBase>> families_;
};

inline constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace lorax::metrics
