// Each normalizer / pre-tokenizer / decoder against the output of the Python
// `tokenizers` library, recorded in component_cases.json by gen_component_cases.py.
#include <gtest/gtest.h>

#include <fstream>

#include "tokenizer/components.h"
#include "tokenizer/regex.h"

namespace lorax::tok {
namespace {

json load_cases() {
  std::ifstream in("tests/unit/tokenizer/component_cases.json");
  EXPECT_TRUE(in.good()) << "run from the repository root";
  return json::parse(in)["cases"];
}

TEST(TokenizerComponents, MatchPythonLibrary) {
  json cases = load_cases();
  ASSERT_GT(cases.size(), 1000u);
  size_t failures = 0;
  for (auto& c : cases) {
    std::string kind = c["kind"];
    SCOPED_TRACE(kind + " " + c["spec"].dump() + " on " + c["input"].dump());
    if (kind == "normalizer") {
      auto n = make_normalizer(c["spec"]);
      std::string s = c["input"];
      n->normalize(s);
      EXPECT_EQ(s, c["expected"].get<std::string>());
      failures += s != c["expected"].get<std::string>();
    } else if (kind == "pre_tokenizer") {
      auto p = make_pre_tokenizer(c["spec"]);
      std::vector<Piece> pieces;
      std::string input = c["input"];
      if (!input.empty()) pieces.push_back({input, true});
      p->pre_tokenize(pieces);
      std::vector<std::string> got;
      for (auto& x : pieces) got.push_back(x.text);
      EXPECT_EQ(got, c["expected"].get<std::vector<std::string>>());
      failures += got != c["expected"].get<std::vector<std::string>>();
    } else {
      auto d = make_decoder(c["spec"]);
      auto tokens = c["input"].get<std::vector<std::string>>();
      d->decode_chain(tokens);
      std::string got;
      for (auto& t : tokens) got += t;
      EXPECT_EQ(got, c["expected"].get<std::string>());
      failures += got != c["expected"].get<std::string>();
    }
    if (failures > 20) FAIL() << "too many failures";
  }
}

TEST(TokenizerComponents, UnknownTypesAreErrors) {
  EXPECT_THROW(make_normalizer(json{{"type", "Nope"}}), std::runtime_error);
  EXPECT_THROW(make_pre_tokenizer(json{{"type", "Nope"}}), std::runtime_error);
  EXPECT_THROW(make_decoder(json{{"type", "Nope"}}), std::runtime_error);
  EXPECT_THROW(make_post_processor(json{{"type", "Nope"}}), std::runtime_error);
  EXPECT_THROW(make_pre_tokenizer(json{{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Sideways"}}),
               std::runtime_error);
}

TEST(TokenizerRegex, OnigurumaEscapesAreRewritten) {
  // Oniguruma \s is Unicode White_Space (no U+180E); \h is a hex digit there.
  std::vector<std::pair<size_t, size_t>> m;
  Regex space(R"(\s+)");
  space.find_all("a \xE1\xA0\x8E b", m);  // U+180E between spaces
  ASSERT_EQ(m.size(), 2u);
  m.clear();
  Regex hex(R"(\h+)");
  hex.find_all("xyz 0fA9 q", m);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0], (std::pair<size_t, size_t>{4, 8}));
  EXPECT_THROW(Regex("(unclosed"), std::runtime_error);
}

}  // namespace
}  // namespace lorax::tok
