// OpenAI log-prob shapes from generated tokens: text offsets count characters
// (not bytes) of what each token added, partial UTF-8 pieces read U+FFFD with
// their real bytes listed, alternatives of equal text keep the likelier one.
#include <gtest/gtest.h>

#include "server/openai_logprobs.h"

namespace lorax::server {
namespace {

GeneratedToken token(int id, std::string text, std::string piece, float lp, std::vector<AlternativeToken> top = {}) {
  GeneratedToken t;
  t.id = id;
  t.text = std::move(text);
  t.piece = std::move(piece);
  t.logprob = lp;
  t.top_tokens = std::move(top);
  return t;
}

TEST(OpenAILogprobs, CompletionOffsetsCountCharacters) {
  CompletionLogprobs lp(3);  // three characters of echoed prompt before
  lp.add(token(1, "", "\xC3", -0.1f));            // first byte of "é": no text yet
  lp.add(token(2, "\xC3\xA9", "\xA9", -0.2f));     // completes it: one character
  lp.add(token(3, "ab", "ab", -0.3f));
  GeneratedToken eos = token(4, "</s>", "</s>", -0.4f);
  eos.special = true;
  lp.add(eos);  // specials are not text
  const auto j = lp.take();
  EXPECT_EQ(j["text_offset"], nlohmann::json({3, 3, 4}));
  EXPECT_EQ(j["tokens"], nlohmann::json({"\xEF\xBF\xBD", "\xEF\xBF\xBD", "ab"}));
  EXPECT_TRUE(lp.empty());
}

TEST(OpenAILogprobs, EqualTextAlternativesKeepTheLikelier) {
  CompletionLogprobs lp;
  lp.add(token(1, "x", "x", -0.5f, {{7, "\xC3", -0.5f, false}, {8, "\xC4", -1.5f, false}, {9, "y", -2.0f, false}}));
  const auto top = lp.take()["top_logprobs"][0];
  ASSERT_EQ(top.size(), 2u);
  EXPECT_FLOAT_EQ(top["\xEF\xBF\xBD"].get<float>(), -0.5f);
  EXPECT_FLOAT_EQ(top["y"].get<float>(), -2.0f);
}

TEST(OpenAILogprobs, ChatEntriesListRealBytes) {
  const auto e = chat_logprob_entry(token(1, "", "\xC3", -0.1f, {{1, "\xC3", -0.1f, false}}));
  EXPECT_EQ(e["token"], "\xEF\xBF\xBD");
  EXPECT_EQ(e["bytes"], nlohmann::json({0xC3}));
  EXPECT_EQ(e["top_logprobs"][0]["bytes"], nlohmann::json({0xC3}));
}

}  // namespace
}  // namespace lorax::server
