#include "server/metrics/registry.h"

#include <stdexcept>

#include <prometheus/check_names.h>
#include <prometheus/text_serializer.h>

namespace lorax::metrics {

namespace {

// The exposition format escapes `\` and newlines in HELP; prometheus-cpp 1.0 does not.
std::string escape_help(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

}  // namespace

void Counter::inc(double v) {
  if (v < 0) throw std::invalid_argument("counter increment must be non-negative");
  c_.Increment(v);
}

uint64_t Histogram::count() const { return h_.Collect().histogram.sample_count; }

std::vector<double> default_buckets() { return {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}; }

std::vector<double> exponential_buckets(double start, double factor, int count) {
  if (start <= 0 || factor <= 1 || count < 1) throw std::invalid_argument("invalid exponential buckets");
  std::vector<double> b;
  for (int i = 0; i < count; ++i, start *= factor) b.push_back(start);
  return b;
}

prometheus::Labels FamilyBase::labels_of(const std::vector<std::string>& values) const {
  if (values.size() != label_names_.size())
    throw std::invalid_argument(name_ + ": expected " + std::to_string(label_names_.size()) + " label values, got " +
                                std::to_string(values.size()));
  prometheus::Labels labels;
  for (size_t i = 0; i < values.size(); ++i) labels[label_names_[i]] = values[i];
  return labels;
}

void Registry::check_names(const std::string& name, const std::vector<std::string>& labels, Type type) const {
  if (!prometheus::CheckMetricName(name)) throw std::invalid_argument("invalid metric name: " + name);
  for (const auto& l : labels) {
    if (!prometheus::CheckLabelName(l)) throw std::invalid_argument("invalid label name: " + l);
    if (type == Type::Histogram && l == "le") throw std::invalid_argument("histogram label 'le' is reserved");
  }
}

FamilyBase* Registry::find(const std::string& name, Type type, const std::vector<std::string>& labels) {
  for (auto& f : families_) {
    if (f->name() != name) continue;
    if (f->type() != type || f->label_names() != labels)
      throw std::invalid_argument("metric " + name + " already registered with another type or labels");
    return f.get();
  }
  return nullptr;
}

CounterFamily& Registry::counter(const std::string& name, const std::string& help,
                                 const std::vector<std::string>& label_names) {
  std::lock_guard lock(mu_);
  if (auto* f = find(name, Type::Counter, label_names)) return static_cast<CounterFamily&>(*f);
  check_names(name, label_names, Type::Counter);
  auto& family = prometheus::BuildCounter().Name(name).Help(escape_help(help)).Register(*registry_);
  families_.push_back(std::make_unique<CounterFamily>(family, name, label_names, Type::Counter));
  return static_cast<CounterFamily&>(*families_.back());
}

GaugeFamily& Registry::gauge(const std::string& name, const std::string& help,
                             const std::vector<std::string>& label_names) {
  std::lock_guard lock(mu_);
  if (auto* f = find(name, Type::Gauge, label_names)) return static_cast<GaugeFamily&>(*f);
  check_names(name, label_names, Type::Gauge);
  auto& family = prometheus::BuildGauge().Name(name).Help(escape_help(help)).Register(*registry_);
  families_.push_back(std::make_unique<GaugeFamily>(family, name, label_names, Type::Gauge));
  return static_cast<GaugeFamily&>(*families_.back());
}

HistogramFamily& Registry::histogram(const std::string& name, const std::string& help,
                                     const std::vector<std::string>& label_names, std::vector<double> buckets) {
  std::lock_guard lock(mu_);
  if (auto* f = find(name, Type::Histogram, label_names)) return static_cast<HistogramFamily&>(*f);
  check_names(name, label_names, Type::Histogram);
  if (buckets.empty()) throw std::invalid_argument(name + ": a histogram needs at least one bucket");
  for (size_t i = 1; i < buckets.size(); ++i)
    if (!(buckets[i] > buckets[i - 1])) throw std::invalid_argument(name + ": bucket bounds must increase");
  auto& family = prometheus::BuildHistogram().Name(name).Help(escape_help(help)).Register(*registry_);
  families_.push_back(std::make_unique<HistogramFamily>(family, name, label_names, Type::Histogram, std::move(buckets)));
  return static_cast<HistogramFamily&>(*families_.back());
}

std::string Registry::serialize() const { return prometheus::TextSerializer().Serialize(registry_->Collect()); }

}  // namespace lorax::metrics
