#include "adapters/adapter_merge.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <tuple>

#include <nlohmann/json.hpp>

#include "download/sha256.h"
#include "model/safetensors.h"

namespace lorax {
namespace {

using Tensors = std::vector<std::vector<float>>;

std::vector<float> to_floats(const StagedAdapter& s, size_t offset, size_t n) {
  std::vector<float> out(n);
  const auto* p = static_cast<const uint8_t*>(s.host.get()) + offset;
  switch (s.dtype) {
    case DType::F32: std::memcpy(out.data(), p, n * sizeof(float)); break;
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) out[i] = bf16_to_float(reinterpret_cast<const uint16_t*>(p)[i]);
      break;
    case DType::F16:
      for (size_t i = 0; i < n; ++i) out[i] = half_to_float(reinterpret_cast<const uint16_t*>(p)[i]);
      break;
    default: throw AdapterError("adapter merge: staged adapters of dtype " + dtype_name(s.dtype) + " cannot be merged");
  }
  return out;
}

// peft's magnitude_based_pruning: the int(density * n) largest magnitudes stay.
void keep_largest(std::vector<float>& t, double density) {
  const size_t k = static_cast<size_t>(density * static_cast<double>(t.size()));
  if (k >= t.size()) return;
  std::vector<float> mags(t.size());
  for (size_t i = 0; i < t.size(); ++i) mags[i] = std::fabs(t[i]);
  if (k == 0) return std::fill(t.begin(), t.end(), 0.0f);
  std::vector<float> sorted = mags;
  std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<float>());
  const float kth = sorted[k - 1];
  size_t above = 0;  // magnitudes strictly above the k-th all stay; of those equal to it, the first ones
  for (float m : mags) above += m > kth;
  size_t equal_left = k - above;
  for (size_t i = 0; i < t.size(); ++i) {
    if (mags[i] > kth) continue;
    if (mags[i] == kth && equal_left > 0) {
      --equal_left;
      continue;
    }
    t[i] = 0.0f;
  }
}

// DARE: each element stays with probability density, rescaled by 1 / density.
void drop_and_rescale(std::vector<float>& t, double density, std::mt19937_64& rng) {
  if (density >= 1.0) return;  // peft: prune() leaves the tensor as it is
  std::bernoulli_distribution keep(density);
  for (float& x : t) x = keep(rng) ? static_cast<float>(x / density) : 0.0f;
}

std::vector<float> weighted_sum(const Tensors& ts, const std::vector<double>& w) {
  std::vector<double> sum(ts[0].size(), 0.0);
  for (size_t i = 0; i < ts.size(); ++i)
    for (size_t j = 0; j < sum.size(); ++j) sum[j] += w[i] * ts[i][j];
  return std::vector<float>(sum.begin(), sum.end());
}

// ties' sign election and disjoint mean over the (already pruned) tensors.
std::vector<float> disjoint_merge(const Tensors& ts, const std::vector<double>& w, MajoritySign method) {
  std::vector<float> out(ts[0].size(), 0.0f);
  auto sign = [](float x) { return x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0; };
  for (size_t j = 0; j < out.size(); ++j) {
    double vote = 0;
    for (const auto& t : ts) vote += method == MajoritySign::Total ? t[j] : sign(t[j]);
    const double majority = vote >= 0 ? 1.0 : -1.0;
    double sum = 0;
    int agree = 0;
    for (size_t i = 0; i < ts.size(); ++i)
      if (sign(ts[i][j]) == majority) {
        sum += w[i] * ts[i][j];
        ++agree;
      }
    out[j] = static_cast<float>(sum / std::max(agree, 1));
  }
  return out;
}

std::vector<float> merge_tensors(Tensors ts, const std::vector<double>& w, const MergeSpec& spec,
                                 std::mt19937_64& rng) {
  switch (spec.strategy) {
    case MergeStrategy::Linear: return weighted_sum(ts, w);
    case MergeStrategy::Ties:
      for (auto& t : ts) keep_largest(t, spec.density);
      return disjoint_merge(ts, w, spec.majority_sign);
    case MergeStrategy::DareLinear:
      for (auto& t : ts) drop_and_rescale(t, spec.density, rng);
      return weighted_sum(ts, w);
    case MergeStrategy::DareTies:
      for (auto& t : ts) drop_and_rescale(t, spec.density, rng);
      return disjoint_merge(ts, w, spec.majority_sign);
  }
  return {};
}

const char* strategy_name(MergeStrategy s) {
  switch (s) {
    case MergeStrategy::Linear: return "linear";
    case MergeStrategy::Ties: return "ties";
    case MergeStrategy::DareLinear: return "dare_linear";
    case MergeStrategy::DareTies: return "dare_ties";
  }
  return "?";
}

}  // namespace

MergeStrategy merge_strategy_named(const std::string& name) {
  for (MergeStrategy s : {MergeStrategy::Linear, MergeStrategy::Ties, MergeStrategy::DareLinear, MergeStrategy::DareTies})
    if (name == strategy_name(s)) return s;
  throw AdapterError("`merge_strategy` must be one of linear, ties, dare_linear, dare_ties");
}

MajoritySign majority_sign_named(const std::string& name) {
  if (name == "total") return MajoritySign::Total;
  if (name == "frequency") return MajoritySign::Frequency;
  throw AdapterError("`majority_sign_method` must be total or frequency");
}

void validate_merge(const MergeSpec& spec) {
  constexpr size_t kMaxSources = 16;
  if (spec.adapters.empty() || spec.adapters.size() > kMaxSources)
    throw AdapterError("`merged_adapters.ids` must name 1 to " + std::to_string(kMaxSources) + " adapters");
  if (spec.weights.size() != spec.adapters.size())
    throw AdapterError("`merged_adapters.weights` must hold one weight per id (" + std::to_string(spec.adapters.size()) +
                       "), not " + std::to_string(spec.weights.size()));
  for (double w : spec.weights)
    if (!std::isfinite(w) || std::fabs(w) > 1e4) throw AdapterError("`merged_adapters.weights` must be finite numbers");
  if (!(spec.density > 0.0 && spec.density <= 1.0)) throw AdapterError("`merged_adapters.density` must be in (0, 1]");
}

std::string MergeSpec::key() const {
  nlohmann::json j = {{"strategy", strategy_name(strategy)},
                      {"density", density},
                      {"majority_sign", majority_sign == MajoritySign::Total ? "total" : "frequency"},
                      {"weights", weights}};
  for (const AdapterRequest& a : adapters) j["adapters"].push_back({a.id, a.source, a.sha256, a.where()});
  return j.dump();
}

std::string MergeSpec::id() const { return "merged-" + sha256_hex(key()).substr(0, 16); }

StagedAdapter merge_staged_adapters(const std::vector<std::shared_ptr<const StagedAdapter>>& sources,
                                    const MergeSpec& spec, const std::string& id, Backend& backend) {
  validate_merge(spec);
  if (sources.size() != spec.adapters.size()) throw AdapterError("adapter merge: one staged adapter per id");
  using Key = std::tuple<int, int, int64_t>;  // layer, projection, column offset: one PEFT module
  std::map<Key, std::vector<std::pair<size_t, const StagedAdapter::Piece*>>> modules;
  for (size_t i = 0; i < sources.size(); ++i)
    for (const StagedAdapter::Piece& p : sources[i]->pieces)
      modules[{p.layer, static_cast<int>(p.projection), p.col_offset}].push_back({i, &p});

  StagedAdapter out;
  out.id = id;
  out.dtype = backend.compute_dtype();
  out.num_layers = sources[0]->num_layers;
  std::vector<std::pair<std::vector<float>, std::vector<float>>> merged;
  std::mt19937_64 rng(std::stoull(sha256_hex(spec.key()).substr(0, 16), nullptr, 16));
  for (const auto& [key, parts] : modules) {
    const StagedAdapter::Piece& first = *parts[0].second;
    Tensors as, bs;
    std::vector<double> wa, wb;
    for (const auto& [i, p] : parts) {
      if (p->rank != first.rank || p->in != first.in || p->out != first.out)
        throw AdapterError("adapter merge: `" + spec.adapters[i].id + "` and `" + spec.adapters[parts[0].first].id +
                           "` differ in rank or shape on one module (merging needs adapters of one rank)");
      const double s = spec.weights[i] * p->scale;
      wa.push_back(std::copysign(std::sqrt(std::fabs(s)), s));
      wb.push_back(std::sqrt(std::fabs(s)));
      as.push_back(to_floats(*sources[i], p->a_offset, static_cast<size_t>(p->rank) * p->in));
      bs.push_back(to_floats(*sources[i], p->b_offset, static_cast<size_t>(p->out) * p->rank));
    }
    StagedAdapter::Piece piece = first;
    piece.scale = 1.0f;
    out.append(piece);
    auto a = merge_tensors(std::move(as), wa, spec, rng);
    auto b = merge_tensors(std::move(bs), wb, spec, rng);
    merged.emplace_back(std::move(a), std::move(b));
  }
  out.host = backend.host_alloc(out.bytes);
  auto* base = static_cast<uint8_t*>(out.host.get());
  for (size_t k = 0; k < out.pieces.size(); ++k) {
    const StagedAdapter::Piece& p = out.pieces[k];
    backend.to_storage(merged[k].first.data(), static_cast<int64_t>(merged[k].first.size()), base + p.a_offset);
    backend.to_storage(merged[k].second.data(), static_cast<int64_t>(merged[k].second.size()), base + p.b_offset);
  }
  return out;
}

}  // namespace lorax
