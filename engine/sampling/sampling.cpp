#include "sampling/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <map>

namespace lorax {
namespace {

constexpr float kRemoved = -INFINITY;

void log_softmax_inplace(std::vector<double>& v) {
  double m = -INFINITY;
  for (double x : v) m = std::max(m, x);
  double sum = 0;
  for (double x : v) sum += std::exp(x - m);
  const double lse = m + std::log(sum);
  for (double& x : v) x -= lse;
}

// Indices sorted by score, highest first.
std::vector<int32_t> order_desc(const std::vector<float>& s) {
  std::vector<int32_t> idx(s.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return s[a] > s[b]; });
  return idx;
}

std::vector<double> probabilities(const std::vector<float>& s) {
  std::vector<double> lp(s.begin(), s.end());
  log_softmax_inplace(lp);
  for (double& x : lp) x = std::exp(x);
  return lp;
}

void top_k(std::vector<float>& s, int k) {
  if (k <= 0 || k >= static_cast<int>(s.size())) return;
  std::vector<float> sorted = s;
  std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<float>());
  const float kth = sorted[k - 1];
  for (float& x : s)
    if (x < kth) x = kRemoved;
}

// Keep the smallest set of most likely tokens whose probability reaches top_p.
void top_p(std::vector<float>& s, double p) {
  if (p >= 1.0) return;
  std::vector<double> probs = probabilities(s);
  std::vector<int32_t> order = order_desc(s);
  double cum = 0;
  size_t keep = 0;
  while (keep < order.size()) {
    cum += probs[order[keep++]];
    if (cum >= p) break;
  }
  for (size_t i = keep; i < order.size(); ++i) s[order[i]] = kRemoved;
}

// Typical sampling: keep tokens whose surprise is closest to the entropy until
// their mass reaches typical_p.
void typical_p(std::vector<float>& s, double mass) {
  if (mass >= 1.0) return;
  std::vector<double> logp(s.begin(), s.end());
  log_softmax_inplace(logp);
  double entropy = 0;
  for (double lp : logp)
    if (std::isfinite(lp)) entropy -= lp * std::exp(lp);
  std::vector<int32_t> idx(s.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::vector<double> shifted(s.size());
  for (size_t i = 0; i < s.size(); ++i) shifted[i] = std::isfinite(logp[i]) ? std::abs(-logp[i] - entropy) : INFINITY;
  std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return shifted[a] < shifted[b]; });
  double cum = 0;
  size_t last = 0;
  for (size_t i = 0; i < idx.size(); ++i) {
    cum += std::exp(logp[idx[i]]);
    if (cum < mass) last = i + 1;
  }
  for (size_t i = last + 1; i < idx.size(); ++i) s[idx[i]] = kRemoved;
}

}  // namespace

std::string SamplingParams::validate() const {
  auto bad = [](double v) { return std::isnan(v) || std::isinf(v); };
  // Logits are divided by these in float: below 1e-5 a logit of a few dozen
  // overflows to infinity and the row turns into NaN.
  constexpr double kMinDivisor = 1e-5;
  if (bad(temperature) || temperature <= 0) return "`temperature` must be strictly positive";
  if (temperature < kMinDivisor) return "`temperature` must be >= 1e-05 (use do_sample false for greedy decoding)";
  if (bad(top_p) || top_p <= 0 || top_p > 1) return "`top_p` must be > 0.0 and <= 1.0";
  if (bad(typical_p) || typical_p <= 0 || typical_p > 1) return "`typical_p` must be > 0.0 and <= 1.0";
  if (top_k < 0) return "`top_k` must be strictly positive";
  if (bad(repetition_penalty) || repetition_penalty <= 0) return "`repetition_penalty` must be strictly positive";
  if (repetition_penalty < kMinDivisor || repetition_penalty > 1 / kMinDivisor)
    return "`repetition_penalty` must be between 1e-05 and 1e+05";
  if (bad(frequency_penalty) || frequency_penalty < -2 || frequency_penalty > 2)
    return "`frequency_penalty` must be >= -2.0 and <= 2.0";
  if (bad(presence_penalty) || presence_penalty < -2 || presence_penalty > 2)
    return "`presence_penalty` must be >= -2.0 and <= 2.0";
  return "";
}

Sampler::Sampler(const SamplingParams& params, uint64_t seed) : p_(params), seed_(seed), rng_(seed) {}

RowChoice Sampler::next(std::span<const int32_t> context, std::span<const int32_t> generated) {
  RowChoice r;
  r.sample = p_.sampling();
  r.temperature = p_.temperature;
  r.top_k = p_.top_k;
  r.top_p = p_.top_p;
  r.typical_p = p_.typical_p;
  r.repetition_penalty = p_.repetition_penalty;
  r.frequency_penalty = p_.frequency_penalty;
  r.presence_penalty = p_.presence_penalty;
  if (r.sample) r.uniform = static_cast<double>(rng_() >> 11) * 0x1.0p-53;  // 53 random bits: [0, 1)
  const bool repetition = p_.repetition_penalty != 1.0;
  const bool frequency = p_.frequency_penalty != 0.0 || p_.presence_penalty != 0.0;
  if (repetition || frequency) {
    std::map<int32_t, PenaltyToken> tokens;
    if (repetition)
      for (int32_t id : context) tokens[id] = {id, 0, 1};
    if (frequency)
      for (int32_t id : generated) {
        PenaltyToken& t = tokens[id];
        t.token = id;
        ++t.generated_count;
      }
    for (const auto& [id, t] : tokens) r.penalties.push_back(t);
  }
  return r;
}

namespace {
// log_softmax(logits)[id] = logits[id] - lse.first - lse.second, as token_logprob computes it.
std::pair<double, double> max_and_log_sum(std::span<const float> logits) {
  double m = -INFINITY;
  for (float x : logits) m = std::max<double>(m, x);
  double sum = 0;
  for (float x : logits) sum += std::exp(x - m);
  return {m, std::log(sum)};
}
}  // namespace

float token_logprob(std::span<const float> logits, int32_t id) {
  const auto [m, log_sum] = max_and_log_sum(logits);
  return static_cast<float>(logits[id] - m - log_sum);
}

std::vector<TokenAlternative> top_tokens(std::span<const float> scores, int n) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < scores.size(); ++i)
    if (std::isfinite(scores[i])) ids.push_back(static_cast<int32_t>(i));
  const size_t keep = std::min(ids.size(), static_cast<size_t>(std::max(n, 0)));
  std::partial_sort(ids.begin(), ids.begin() + keep, ids.end(),
                    [&](int32_t a, int32_t b) { return scores[a] > scores[b] || (scores[a] == scores[b] && a < b); });
  const auto [m, log_sum] = max_and_log_sum(scores);
  std::vector<TokenAlternative> out;
  for (size_t i = 0; i < keep; ++i) out.push_back({ids[i], static_cast<float>(scores[ids[i]] - m - log_sum)});
  return out;
}

namespace {

// The first token whose cumulative probability (in id order) exceeds u of the
// total; never a token of probability zero.
int32_t draw(const std::vector<double>& probs, double u) {
  double total = 0;
  for (double p : probs) total += p;
  const double target = u * total;
  double cum = 0;
  int32_t last = 0;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] <= 0) continue;
    cum += probs[i];
    last = static_cast<int32_t>(i);
    if (cum > target) return last;
  }
  return last;
}

}  // namespace

TokenChoice choose_token(std::span<const float> logits, const RowChoice& row) {
  if (row.prompt_target >= 0) return {row.prompt_target, token_logprob(logits, row.prompt_target), {}};
  std::vector<float> s(logits.begin(), logits.end());
  const int32_t vocab = static_cast<int32_t>(s.size());
  if (row.allowed)
    for (int32_t i = 0; i < vocab; ++i)
      if (!row.allowed.allows(i)) s[i] = kRemoved;
  const bool frequency = row.frequency_penalty != 0.0 || row.presence_penalty != 0.0;
  for (const PenaltyToken& p : row.penalties) {
    if (p.token < 0 || p.token >= vocab) continue;
    float& x = s[p.token];
    if (row.repetition_penalty != 1.0 && p.in_context)
      x = x < 0 ? x * static_cast<float>(row.repetition_penalty) : x / static_cast<float>(row.repetition_penalty);
    if (frequency && p.generated_count > 0)
      x -= static_cast<float>(row.frequency_penalty * p.generated_count + row.presence_penalty);
  }
  TokenChoice choice;
  if (row.sample) {
    if (row.temperature != 1.0)
      for (float& x : s) x = static_cast<float>(x / row.temperature);
    top_k(s, row.top_k);
    top_p(s, row.top_p);
    typical_p(s, row.typical_p);
    choice.id = draw(probabilities(s), row.uniform);
  } else {
    choice.id = static_cast<int32_t>(std::max_element(s.begin(), s.end()) - s.begin());
  }
  choice.logprob = token_logprob(s, choice.id);
  if (row.top_n > 0) choice.top = top_tokens(s, row.top_n);
  return choice;
}

}  // namespace lorax
