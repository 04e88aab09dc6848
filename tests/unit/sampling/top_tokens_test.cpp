// The contract of token alternatives (sampling.cpp top_tokens, RowChoice::top_n)
// that the CUDA kernel is tested against in tests/gpu: most likely first, equal
// scores in id order, only tokens the distribution allows, the chosen token's own
// log-prob among them. The log-probs are checked against a direct log-sum-exp.
#include <gtest/gtest.h>

#include <cmath>

#include "sampling/sampling.h"

namespace lorax {
namespace {

double log_softmax_at(const std::vector<float>& s, int id) {
  double sum = 0;
  for (float x : s)
    if (std::isfinite(x)) sum += std::exp(static_cast<double>(x));
  return s[id] - std::log(sum);
}

TEST(TopTokens, LikeliestFirstTiesInIdOrder) {
  const std::vector<float> s = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f, 2.0f};
  const auto top = top_tokens(s, 4);
  ASSERT_EQ(top.size(), 4u);
  EXPECT_EQ(top[0].id, 1);
  EXPECT_EQ(top[1].id, 3);
  EXPECT_EQ(top[2].id, 5);
  EXPECT_EQ(top[3].id, 4);
  for (const auto& t : top) EXPECT_NEAR(t.logprob, log_softmax_at(s, t.id), 1e-6);
}

TEST(TopTokens, OnlyAllowedTokensAndNeverMoreThanThere) {
  const std::vector<float> s = {-INFINITY, 1.0f, -INFINITY, 0.0f};
  const auto top = top_tokens(s, 20);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].id, 1);
  EXPECT_EQ(top[1].id, 3);
  EXPECT_TRUE(top_tokens(s, 0).empty());
}

TEST(TopTokens, ChosenTokenCarriesItsOwnLogprob) {
  std::vector<float> logits(50);
  for (int i = 0; i < 50; ++i) logits[i] = std::sin(i * 1.7f) * 3.0f;
  RowChoice row;
  row.top_n = 5;
  row.sample = true;
  row.temperature = 0.7;
  row.top_k = 3;  // three tokens left: three alternatives, and the warped distribution's log-probs sum to 1
  row.uniform = 0.6;
  const TokenChoice c = choose_token(logits, row);
  ASSERT_EQ(c.top.size(), 3u);
  double mass = 0;
  bool found = false;
  for (const auto& t : c.top) {
    mass += std::exp(static_cast<double>(t.logprob));
    found = found || (t.id == c.id && t.logprob == c.logprob);
  }
  EXPECT_NEAR(mass, 1.0, 1e-6);
  EXPECT_TRUE(found);
  row.top_n = 0;
  EXPECT_TRUE(choose_token(logits, row).top.empty());
}

}  // namespace
}  // namespace lorax
