// Token masks: the trie walk must allow exactly the tokens whose bytes, fed one
// by one, keep the matcher alive (a brute-force check over every token), on the
// real Llama 3 and GPT-2 vocabularies; EOS only where the text can end; the
// cache returns the same masks.
#include <gtest/gtest.h>

#include <random>

#include "structured/token_mask.h"
#include "tokenizer/tokenizer.h"

namespace lorax::structured {
namespace {

using json = nlohmann::json;

TokenMask brute_force(const Schema& s, const TokenTable& t, const MatchState& state, bool allow_eos) {
  TokenMask m;
  m.words.assign((t.vocab_size() + 31) / 32, 0);
  for (size_t id = 0; id < t.vocab_size(); ++id) {
    const bool eos = t.eos_ids().count(static_cast<int32_t>(id)) > 0;
    bool ok;
    if (eos) {
      ok = allow_eos && state.can_finish(s);
    } else {
      MatchState st = state;
      ok = !t.bytes(static_cast<int32_t>(id)).empty() && advance(s, st, t.bytes(static_cast<int32_t>(id)));
      if (ok) m.any_text = true;
    }
    if (ok) m.words[id / 32] |= 1u << (id % 32);
  }
  return m;
}

const json kSchema = {{"type", "object"},
                      {"properties",
                       {{"name", {{"type", "string"}, {"maxLength", 12}}},
                        {"age", {{"type", "integer"}, {"minimum", 0}, {"maximum", 130}}},
                        {"tags", {{"type", "array"}, {"items", {{"enum", {"a", "b c", 3}}}}}},
                        {"when", {{"type", "string"}, {"format", "date"}}}}},
                      {"required", {"name", "age"}}};

// Walks a valid text byte by byte and compares the masks at every step.
void compare_along(const std::string& tokenizer_dir, const std::string& text) {
  auto tok = Tokenizer::load(tokenizer_dir);
  std::set<int32_t> eos;
  if (auto id = tok->token_to_id(tok->config().eos_token.value_or(""))) eos.insert(*id);
  auto table = TokenTable::build(*tok, eos);
  auto schema = Schema::compile(kSchema);
  MatchState st = initial_state(*schema);
  for (size_t i = 0; i <= text.size(); ++i) {
    const TokenMask walked = compute_mask(*schema, *table, st, true);
    const TokenMask brute = brute_force(*schema, *table, st, true);
    ASSERT_EQ(walked.words, brute.words) << "after " << i << " bytes: " << text.substr(0, i);
    ASSERT_EQ(walked.any_text, brute.any_text);
    if (i == text.size()) break;
    MatchState next;
    advance(*schema, st, static_cast<uint8_t>(text[i]), next);
    ASSERT_FALSE(next.dead()) << text.substr(0, i + 1);
    st = next;
  }
  EXPECT_TRUE(st.can_finish(*schema));
}

const std::string kText = " {\"name\": \"Zo\xc3\xab\", \"age\": 42, \"tags\": [\"b c\", 3], \"when\": \"2024-02-29\"}";

TEST(TokenMask, TrieWalkEqualsBruteForceLlama3) { compare_along("../shared/tokenizers/llama3", kText); }
TEST(TokenMask, TrieWalkEqualsBruteForceLlama2ByteFallback) { compare_along("../shared/tokenizers/llama2", kText); }

TEST(TokenMask, TokenBytesOfByteFallbackAndMetaspace) {
  auto tok = Tokenizer::load("../shared/tokenizers/llama2");
  EXPECT_EQ(tok->token_bytes(*tok->token_to_id("<0xC3>")), std::string("\xc3"));
  EXPECT_EQ(tok->token_bytes(*tok->token_to_id("\xe2\x96\x81{")), std::string(" {"));
  EXPECT_EQ(tok->token_bytes(*tok->token_to_id("</s>")), std::nullopt);  // special
  auto gpt2 = Tokenizer::load("../shared/tokenizers/gpt2");
  EXPECT_EQ(gpt2->token_bytes(*gpt2->token_to_id("\xc4\xa0{")), std::string(" {"));
}

TEST(TokenMask, EosOnlyWhereTheTextCanEnd) {
  std::vector<std::string> bytes = {"", "{", "}", "\"", "a", "{}", " ", "1"};
  auto table = TokenTable::from_bytes(bytes, {0});
  auto schema = Schema::compile({{"type", "object"}});
  MatchState st = initial_state(*schema);
  TokenMask m = compute_mask(*schema, *table, st, true);
  EXPECT_FALSE(m.allows(0));
  EXPECT_TRUE(m.allows(1) && m.allows(5) && m.allows(6));
  EXPECT_FALSE(m.allows(2) || m.allows(4) || m.allows(7));
  ASSERT_TRUE(advance(*schema, st, "{}"));
  m = compute_mask(*schema, *table, st, true);
  EXPECT_TRUE(m.allows(0));
  EXPECT_FALSE(m.any_text);
  EXPECT_FALSE(compute_mask(*schema, *table, st, false).allows(0));
}

TEST(TokenMask, ConstraintFollowsTokensAndCachesMasks) {
  std::vector<std::string> bytes = {"", "{\"", "a", "\":", "1", "}", "\"", " "};
  auto cache = std::make_shared<MaskCache>(Schema::compile({{"type", "object"}}), TokenTable::from_bytes(bytes, {0}));
  Constraint c(cache, true);
  EXPECT_FALSE(c.accept(2));  // "a" cannot start the object
  for (int32_t id : {1, 2, 2, 3, 4}) ASSERT_TRUE(c.accept(id)) << id;
  EXPECT_FALSE(c.complete());
  ASSERT_TRUE(c.accept(5));
  EXPECT_TRUE(c.complete());
  Constraint again(cache, true);
  for (int32_t id : {1, 2, 3, 4, 5}) ASSERT_TRUE(again.accept(id));
  EXPECT_GT(cache->hits(), 0u);
}

TEST(TokenMask, CountsFarFromTheirBoundsShareOneMask) {
  std::vector<std::string> bytes = {"", "\"", "a", "ab", "b\""};
  auto cache = std::make_shared<MaskCache>(Schema::compile({{"type", "string"}, {"minLength", 40}, {"maxLength", 50}}),
                                           TokenTable::from_bytes(bytes, {0}));
  Constraint c(cache, true);
  ASSERT_TRUE(c.accept(1));
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(c.accept(2));  // 20 characters: far from both bounds
  const uint64_t misses = cache->misses();
  for (int i = 0; i < 15; ++i) ASSERT_TRUE(c.accept(2));  // still far: every mask is the cached one
  EXPECT_EQ(cache->misses(), misses);
  ASSERT_TRUE(c.accept(2));  // 36, then 38, 39: near the minimum, where the masks differ
  ASSERT_TRUE(c.accept(3));
  EXPECT_FALSE(c.mask()->allows(1));  // 38 < 40: no closing quote yet
  EXPECT_FALSE(c.mask()->allows(4));  // b + quote would close at 39
  ASSERT_TRUE(c.accept(2));
  EXPECT_TRUE(c.mask()->allows(4));   // 39 + b = 40, then the quote
  EXPECT_GT(cache->misses(), misses);
}

TEST(TokenMask, WorkersPrepareTheSameMasksAsOneThread) {
  std::vector<std::string> bytes = {"", "{\"", "a", "\":", "1", "}", "\"", " ", "2", ",\"", "b"};
  auto table = TokenTable::from_bytes(bytes, {0});
  auto schema = Schema::compile({{"type", "object"}, {"additionalProperties", {{"type", "integer"}}}});
  const std::vector<std::vector<int32_t>> paths = {{1, 2}, {1, 2, 3}, {1, 10, 3, 4}, {1, 2, 3, 4, 9}, {1, 2, 2, 3, 8}};
  MaskWorkers workers(4);
  for (int round = 0; round < 200; ++round) {
    // Fresh caches each round, so that walks (not lookups) run on the workers.
    auto parallel_cache = std::make_shared<MaskCache>(schema, table), serial_cache = std::make_shared<MaskCache>(schema, table);
    std::vector<std::unique_ptr<Constraint>> parallel, serial;
    std::vector<Constraint*> batch;
    for (int i = 0; i < 24; ++i) {
      parallel.push_back(std::make_unique<Constraint>(parallel_cache, true));
      serial.push_back(std::make_unique<Constraint>(serial_cache, true));
      for (int32_t id : paths[(i + round) % paths.size()]) {
        ASSERT_TRUE(parallel.back()->accept(id));
        ASSERT_TRUE(serial.back()->accept(id));
      }
      batch.push_back(parallel.back().get());
    }
    workers.prepare(batch);
    for (size_t i = 0; i < batch.size(); ++i) ASSERT_EQ(parallel[i]->mask()->words, serial[i]->mask()->words) << i;
  }
}

}  // namespace
}  // namespace lorax::structured
