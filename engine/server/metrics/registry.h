// A small Prometheus metrics registry with text exposition format 0.0.4.
// Written by hand because prometheus-cpp is not packaged in Debian 12 and we only
// need counters, gauges and histograms with labels, serialized as text.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace lorax::metrics {

class Counter {
public:
  // Counters only go up; a negative increment throws std::invalid_argument.
  void inc(double v = 1.0);
  double value() const { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<double> value_{0.0};
};

class Gauge {
public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void inc(double v = 1.0) { value_.fetch_add(v, std::memory_order_relaxed); }
  void dec(double v = 1.0) { value_.fetch_sub(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<double> value_{0.0};
};

class Histogram {
public:
  struct Snapshot {
    std::vector<double> bounds;           // upper bounds, without +Inf
    std::vector<uint64_t> cumulative;     // one per bound, then one for +Inf
    double sum = 0.0;
    uint64_t count = 0;
  };
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  Snapshot snapshot() const;

private:
  const std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative), last = +Inf
  double sum_ = 0.0;
  uint64_t count_ = 0;
};

// Default buckets of the Prometheus client libraries (seconds).
std::vector<double> default_buckets();
// start, start*factor, ... (count bounds).
std::vector<double> exponential_buckets(double start, double factor, int count);

enum class Type { Counter, Gauge, Histogram };

class FamilyBase {
public:
  FamilyBase(std::string name, std::string help, std::vector<std::string> label_names, Type type);
  virtual ~FamilyBase() = default;
  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  Type type() const { return type_; }
  virtual void serialize(std::string& out) const = 0;

protected:
  void check_arity(const std::vector<std::string>& values) const;
  std::string name_, help_;
  std::vector<std::string> label_names_;
  Type type_;
  mutable std::mutex mu_;
};

// A metric family: one child per distinct tuple of label values.
template <class T>
class Family : public FamilyBase {
public:
  Family(std::string name, std::string help, std::vector<std::string> label_names, Type type,
         std::vector<double> buckets = {})
      : FamilyBase(std::move(name), std::move(help), std::move(label_names), type),
        buckets_(std::move(buckets)) {}

  // Returns the child for these label values (in label-name order), creating it.
  // The reference stays valid for the registry's lifetime.
  T& labels(const std::vector<std::string>& values) {
    check_arity(values);
    std::lock_guard lock(mu_);
    auto it = children_.find(values);
    if (it == children_.end()) it = children_.emplace(values, make()).first;
    return *it->second;
  }
  // Drops the child for these label values (a series that no longer exists, e.g.
  // an unloaded adapter); references to it must not be used afterwards.
  void remove(const std::vector<std::string>& values) {
    std::lock_guard lock(mu_);
    children_.erase(values);
  }
  void serialize(std::string& out) const override;

private:
  std::unique_ptr<T> make() const;
  std::vector<double> buckets_;
  std::map<std::vector<std::string>, std::unique_ptr<T>> children_;
};

// Defined in registry.cpp; declared here so every user sees the specializations.
template <> std::unique_ptr<Counter> Family<Counter>::make() const;
template <> std::unique_ptr<Gauge> Family<Gauge>::make() const;
template <> std::unique_ptr<Histogram> Family<Histogram>::make() const;
template <> void Family<Counter>::serialize(std::string& out) const;
template <> void Family<Gauge>::serialize(std::string& out) const;
template <> void Family<Histogram>::serialize(std::string& out) const;

class Registry {
public:
  // Registering an existing name again returns the same family when type and
  // label names match, and throws std::invalid_argument otherwise.
  Family<Counter>& counter(const std::string& name, const std::string& help,
                           const std::vector<std::string>& label_names = {});
  Family<Gauge>& gauge(const std::string& name, const std::string& help,
                       const std::vector<std::string>& label_names = {});
  Family<Histogram>& histogram(const std::string& name, const std::string& help,
                               const std::vector<std::string>& label_names = {},
                               std::vector<double> buckets = default_buckets());
  // Text exposition format 0.0.4 (Content-Type: text/plain; version=0.0.4).
  std::string serialize() const;

private:
  FamilyBase* find(const std::string& name, Type type, const std::vector<std::string>& labels);
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<FamilyBase>> families_;
};

inline constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace lorax::metrics
