#include "server/metrics/registry.h"

#include <cmath>
#include <stdexcept>

#include "server/metrics/text_format.h"

namespace lorax::metrics {

void Counter::inc(double v) {
  if (v < 0) throw std::invalid_argument("counter increment must be non-negative");
  value_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;  // le is inclusive
  std::lock_guard lock(mu_);
  ++counts_[i];
  sum_ += v;
  ++count_;
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  std::lock_guard lock(mu_);
  uint64_t acc = 0;
  for (uint64_t c : counts_) s.cumulative.push_back(acc += c);
  s.sum = sum_;
  s.count = count_;
  return s;
}

std::vector<double> default_buckets() { return {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}; }

std::vector<double> exponential_buckets(double start, double factor, int count) {
  if (start <= 0 || factor <= 1 || count < 1) throw std::invalid_argument("invalid exponential buckets");
  std::vector<double> b;
  for (int i = 0; i < count; ++i, start *= factor) b.push_back(start);
  return b;
}

FamilyBase::FamilyBase(std::string name, std::string help, std::vector<std::string> label_names, Type type)
    : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)), type_(type) {
  if (!valid_metric_name(name_)) throw std::invalid_argument("invalid metric name: " + name_);
  for (const auto& l : label_names_) {
    if (!valid_label_name(l)) throw std::invalid_argument("invalid label name: " + l);
    if (type_ == Type::Histogram && l == "le") throw std::invalid_argument("histogram label 'le' is reserved");
  }
}

void FamilyBase::check_arity(const std::vector<std::string>& values) const {
  if (values.size() != label_names_.size())
    throw std::invalid_argument(name_ + ": expected " + std::to_string(label_names_.size()) + " label values, got " +
                                std::to_string(values.size()));
}

static void header(std::string& out, const FamilyBase& f, const char* type) {
  out += "# HELP " + f.name() + " " + escape_help(f.help()) + "\n";
  out += "# TYPE " + f.name() + " " + type + "\n";
}

template <>
std::unique_ptr<Counter> Family<Counter>::make() const { return std::make_unique<Counter>(); }
template <>
std::unique_ptr<Gauge> Family<Gauge>::make() const { return std::make_unique<Gauge>(); }
template <>
std::unique_ptr<Histogram> Family<Histogram>::make() const { return std::make_unique<Histogram>(buckets_); }

template <>
void Family<Counter>::serialize(std::string& out) const {
  header(out, *this, "counter");
  std::lock_guard lock(mu_);
  for (const auto& [values, c] : children_)
    out += name_ + format_labels(label_names_, values) + " " + format_value(c->value()) + "\n";
}

template <>
void Family<Gauge>::serialize(std::string& out) const {
  header(out, *this, "gauge");
  std::lock_guard lock(mu_);
  for (const auto& [values, g] : children_)
    out += name_ + format_labels(label_names_, values) + " " + format_value(g->value()) + "\n";
}

template <>
void Family<Histogram>::serialize(std::string& out) const {
  header(out, *this, "histogram");
  std::lock_guard lock(mu_);
  for (const auto& [values, h] : children_) {
    auto s = h->snapshot();
    for (size_t i = 0; i <= s.bounds.size(); ++i) {
      std::string le = i < s.bounds.size() ? format_value(s.bounds[i]) : "+Inf";
      out += name_ + "_bucket" + format_labels(label_names_, values, "le", le) + " " +
             std::to_string(s.cumulative[i]) + "\n";
    }
    std::string labels = format_labels(label_names_, values);
    out += name_ + "_sum" + labels + " " + format_value(s.sum) + "\n";
    out += name_ + "_count" + labels + " " + std::to_string(s.count) + "\n";
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

Family<Counter>& Registry::counter(const std::string& name, const std::string& help,
                                   const std::vector<std::string>& label_names) {
  std::lock_guard lock(mu_);
  if (auto* f = find(name, Type::Counter, label_names)) return static_cast<Family<Counter>&>(*f);
  families_.push_back(std::make_unique<Family<Counter>>(name, help, label_names, Type::Counter));
  return static_cast<Family<Counter>&>(*families_.back());
}

Family<Gauge>& Registry::gauge(const std::string& name, const std::string& help,
                               const std::vector<std::string>& label_names) {
  std::lock_guard lock(mu_);
  if (auto* f = find(name, Type::Gauge, label_names)) return static_cast<Family<Gauge>&>(*f);
  families_.push_back(std::make_unique<Family<Gauge>>(name, help, label_names, Type::Gauge));
  return static_cast<Family<Gauge>&>(*families_.back());
}

Family<Histogram>& Registry::histogram(const std::string& name, const std::string& help,
                                       const std::vector<std::string>& label_names, std::vector<double> buckets) {
  if (!buckets.empty() && std::isinf(buckets.back()) && buckets.back() > 0) buckets.pop_back();  // +Inf is implicit
  if (buckets.empty()) throw std::invalid_argument(name + ": histogram needs at least one bucket");
  for (size_t i = 1; i < buckets.size(); ++i)
    if (!(buckets[i] > buckets[i - 1])) throw std::invalid_argument(name + ": buckets must be strictly increasing");
  std::lock_guard lock(mu_);
  if (auto* f = find(name, Type::Histogram, label_names)) return static_cast<Family<Histogram>&>(*f);
  families_.push_back(
      std::make_unique<Family<Histogram>>(name, help, label_names, Type::Histogram, std::move(buckets)));
  return static_cast<Family<Histogram>&>(*families_.back());
}

std::string Registry::serialize() const {
  std::string out;
  std::lock_guard lock(mu_);
  for (const auto& f : families_) f->serialize(out);
  return out;
}

}  // namespace lorax::metrics
