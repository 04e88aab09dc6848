// The public Tokenizer API on the shared real tokenizers. Expected ids/texts were
// obtained from the Python `tokenizers` 0.21.0 library:
//   Tokenizer.from_file(".../gpt2/tokenizer.json").encode("Hello world <|endoftext|>").ids
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string_view>
#include <thread>

#include <unistd.h>

#include "tokenizer/tokenizer.h"

namespace lorax {
namespace {

std::filesystem::path shared_dir() {
  if (const char* s = std::getenv("LORAX_SHARED_DIR")) return s;
  return std::filesystem::current_path().parent_path() / "shared";
}

std::shared_ptr<const Tokenizer> load_or_skip(const std::string& name) {
  auto dir = shared_dir() / "tokenizers" / name;
  if (!std::filesystem::exists(dir / "tokenizer.json")) return nullptr;
  return Tokenizer::load(dir);
}

TEST(TokenizerApi, Gpt2EncodeDecode) {
  auto tok = load_or_skip("gpt2");
  if (!tok) GTEST_SKIP() << "shared tokenizers not present";
  std::vector<int32_t> want = {15496, 995, 220, 50256};  // from the Python library
  EXPECT_EQ(tok->encode("Hello world <|endoftext|>"), want);
  EXPECT_EQ(tok->decode(want), "Hello world <|endoftext|>");
  EXPECT_EQ(tok->decode(want, true), "Hello world ");
  EXPECT_EQ(tok->vocab_size(), 50257u);
  EXPECT_TRUE(tok->is_special(50256));
  EXPECT_FALSE(tok->is_special(995));
  EXPECT_EQ(tok->token_to_id("<|endoftext|>"), 50256);
  EXPECT_EQ(tok->id_to_token(995), "\xC4\xA0world");  // "Ġworld"
  EXPECT_EQ(tok->id_to_token(-1), "");
  EXPECT_EQ(tok->id_to_token(50257), "");
  EXPECT_FALSE(tok->token_to_id("no such token").has_value());
  EXPECT_EQ(tok->config().eos_token, "<|endoftext|>");
  std::vector<int32_t> bad = {50257};
  EXPECT_THROW(tok->decode(bad), TokenizerError);
}

TEST(TokenizerApi, Llama2AddsBosAndConfig) {
  auto tok = load_or_skip("llama2");
  if (!tok) GTEST_SKIP() << "shared tokenizers not present";
  std::vector<int32_t> with = {1, 22557, 1526}, without = {22557, 1526};  // from the Python library
  EXPECT_EQ(tok->encode("Hello world"), with);
  EXPECT_EQ(tok->encode("Hello world", false), without);
  EXPECT_EQ(tok->config().bos_token, "<s>");
  EXPECT_EQ(tok->config().add_bos_token, true);
}

TEST(TokenizerApi, IncrementalDetokenizerUsesPromptContext) {
  auto tok = load_or_skip("llama2");
  if (!tok) GTEST_SKIP() << "shared tokenizers not present";
  // Without context the first Metaspace piece loses its leading space (as decode does);
  // after a prompt it keeps it.
  std::vector<int32_t> prompt = {1, 22557};
  IncrementalDetokenizer with_prompt(tok, false, prompt);
  std::string out = with_prompt.push(1526);
  out += with_prompt.finish();
  EXPECT_EQ(out, " world");
  IncrementalDetokenizer bare(tok);
  out = bare.push(1526);
  out += bare.finish();
  EXPECT_EQ(out, tok->decode(std::vector<int32_t>{1526}));
}

TEST(TokenizerApi, StreamingNeverSplitsUtf8) {
  auto tok = load_or_skip("gpt2");
  if (!tok) GTEST_SKIP() << "shared tokenizers not present";
  auto ids = tok->encode("naïve 😀 日本語 ok");
  IncrementalDetokenizer d(tok);
  std::string all;
  for (int32_t id : ids) {
    std::string piece = d.push(id);
    // Every emitted piece is whole UTF-8 on its own.
    EXPECT_EQ(tok->decode(tok->encode(piece, false)), piece);
    all += piece;
  }
  all += d.finish();
  EXPECT_EQ(all, tok->decode(ids));
}

TEST(TokenizerApi, LoadErrorsNameTheFile) {
  try {
    Tokenizer::from_json_text("{\"model\": 3", "/x/tokenizer.json");
    FAIL();
  } catch (const TokenizerError& e) {
    EXPECT_NE(std::string(e.what()).find("/x/tokenizer.json"), std::string::npos);
  }
  EXPECT_THROW(Tokenizer::load("/no/such/dir"), TokenizerError);
}

TEST(TokenizerApi, InvalidUtf8BecomesReplacementCharacters) {
  auto tok = load_or_skip("llama3");
  if (!tok) GTEST_SKIP() << "shared tokenizers not present";
  // Python strings cannot hold bad bytes; we treat each maximal bad sequence as U+FFFD.
  EXPECT_EQ(tok->encode("a\xff\xfe b\xe2\x82"), tok->encode("a\xEF\xBF\xBD\xEF\xBF\xBD b\xEF\xBF\xBD"));
}

TEST(TokenizerApi, ConcurrentEncodeMatchesSequential) {
  auto tok = load_or_skip("qwen3");
  if (!tok) GTEST_SKIP() << "shared tokenizers not present";
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i)
    texts.push_back("sample " + std::to_string(i * 7919) + " naïve 日本語 text\n" + std::string(i % 13, ' ') + "end");
  std::vector<std::vector<int32_t>> want;
  for (auto& t : texts) want.push_back(tok->encode(t));
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      for (int rep = 0; rep < 5; ++rep)
        for (size_t i = 0; i < texts.size(); ++i) mismatches[k] += tok->encode(texts[i]) != want[i];
    });
  for (auto& t : threads) t.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

// Robustness: arbitrary bytes and arbitrary ids never crash or hang.
TEST(TokenizerApi, RandomInputNeverCrashes) {
  for (const char* name : {"gpt2", "llama2"}) {
    auto tok = load_or_skip(name);
    if (!tok) GTEST_SKIP() << "shared tokenizers not present";
    std::mt19937 rng(1234);
    for (int i = 0; i < 300; ++i) {
      std::string s(rng() % 64, '\0');
      for (auto& c : s) c = static_cast<char>(rng() % 256);
      auto ids = tok->encode(s);
      std::string text = tok->decode(ids);
      std::vector<int32_t> random_ids(rng() % 16);
      for (auto& id : random_ids) id = static_cast<int32_t>(rng() % tok->vocab_size());
      IncrementalDetokenizer d(tok, i % 2 == 0);
      std::string streamed;
      for (int32_t id : random_ids) streamed += d.push(id);
      streamed += d.finish();
      EXPECT_EQ(streamed, tok->decode(random_ids, i % 2 == 0));
    }
  }
}

// Streams full of invalid byte sequences (lone continuation bytes, cut sequences, byte-fallback
// pieces) still concatenate to decode(), and text is released before finish().
TEST(TokenizerApi, StreamingGarbageBytes) {
  for (const char* name : {"gpt2", "llama2"}) {
    auto tok = load_or_skip(name);
    if (!tok) GTEST_SKIP() << "shared tokenizers not present";
    // Single-byte pieces: byte-level characters for gpt2, <0xXX> pieces for llama2.
    std::vector<int32_t> bytes;
    for (int b = 0x80; b < 0x100; ++b) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "<0x%02X>", b);
      auto id = std::string(name) == "gpt2" ? tok->encode(std::string(1, static_cast<char>(b)), false)
                                            : std::vector<int32_t>{tok->token_to_id(hex).value_or(0)};
      bytes.insert(bytes.end(), id.begin(), id.end());
    }
    auto words = tok->encode(" hello world 1234 ok", false);
    std::mt19937 rng(7);
    size_t emitted_early = 0;
    for (int i = 0; i < 400; ++i) {
      std::vector<int32_t> ids;
      for (int k = 0; k < 60; ++k)
        ids.push_back(rng() % 3 ? bytes[rng() % bytes.size()] : words[rng() % words.size()]);
      IncrementalDetokenizer d(tok, false);
      std::string streamed;
      for (int32_t id : ids) streamed += d.push(id);
      emitted_early += streamed.size();
      streamed += d.finish();
      ASSERT_EQ(streamed, tok->decode(ids)) << name << " sequence " << i;
    }
    EXPECT_GT(emitted_early, 0u);
    // Only invalid bytes: the text always ends in U+FFFD, yet the window must not grow without end.
    // (A run of byte-fallback pieces is one group until another piece ends it, so llama2 holds it.)
    if (std::string(name) != "gpt2") continue;
    IncrementalDetokenizer d(tok, false);
    std::vector<int32_t> lone(200, bytes[0]);  // 0x80, a lone continuation byte
    std::string streamed;
    for (int32_t id : lone) streamed += d.push(id);
    EXPECT_FALSE(streamed.empty()) << name;
    streamed += d.finish();
    EXPECT_EQ(streamed, tok->decode(lone)) << name;
  }
}

// Corrupting a valid file anywhere gives either a working tokenizer or a TokenizerError.
TEST(TokenizerApi, CorruptedJsonIsAnErrorNotACrash) {
  std::string good = R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]},
    "normalizer": {"type": "NFC"}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\s+"},
    "behavior": "Isolated", "invert": false}, "decoder": {"type": "Fuse"},
    "added_tokens": [{"id": 3, "content": "<s>", "special": true}]})";
  std::mt19937 rng(99);
  int loaded = 0, rejected = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string bad = good;
    const std::string_view alphabet = "{}[]\":,0a -9";  // indexed within its size (% 14 read past it: UBSan)
    for (int k = 0; k < 3; ++k) bad[rng() % bad.size()] = alphabet[rng() % alphabet.size()];
    try {
      auto tok = Tokenizer::from_json_text(bad, "fuzz.json");
      tok->decode(tok->encode("ab ab<s>"));
      ++loaded;
    } catch (const TokenizerError& e) {
      EXPECT_NE(std::string(e.what()).find("fuzz.json"), std::string::npos);
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
}

// Found by tests/fuzz (tokenizer_json): "Fixed" padding of 10^12 made every encode
// try to allocate 4 TB, and a pad_id outside the vocab came out of encode().
TEST(TokenizerApi, PaddingIsBounded) {
  auto with_padding = [](const std::string& padding) {
    return R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}, "padding": )" +
           padding + "}";
  };
  auto tok = Tokenizer::from_json_text(with_padding(R"({"strategy": {"Fixed": 4}, "pad_id": 1})"), "ok.json");
  EXPECT_EQ(tok->encode("ab"), (std::vector<int32_t>{2, 1, 1, 1}));
  for (const char* bad : {R"({"strategy": {"Fixed": 1000000000000}})", R"({"strategy": {"Fixed": -1}})",
                          R"({"strategy": {"Fixed": 2.5}})", R"({"strategy": "BatchLongest", "pad_to_multiple_of": 1099511627776})",
                          R"({"strategy": {"Fixed": 4}, "pad_id": 3})", R"({"strategy": {"Fixed": 4}, "pad_id": 4294967297})",
                          R"({"strategy": {"Fixed": 4}, "pad_id": -1})"}) {
    try {
      Tokenizer::from_json_text(with_padding(bad), "bad.json");
      ADD_FAILURE() << "accepted padding " << bad;
    } catch (const TokenizerError& e) {
      EXPECT_NE(std::string(e.what()).find("padding"), std::string::npos) << e.what();
    }
  }
}

// Found by tests/fuzz (tokenizer_json): a count or id written as a float (1e30)
// went through nlohmann's get<int64_t>, an undefined float-to-int cast (UBSan).
TEST(TokenizerApi, IntegerFieldsMustBeIntegers) {
  const std::string model = R"("model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]})";
  for (const std::string field :
       {R"("added_tokens": [{"id": 1e30, "content": "<x>"}])", R"("truncation": {"max_length": 1e30})",
        R"("padding": {"strategy": {"Fixed": 4}, "pad_id": 1e30})",
        R"("decoder": {"type": "Strip", "content": " ", "start": 1e30, "stop": 0})",
        R"("post_processor": {"type": "RobertaProcessing", "cls": ["<s>", 1e30], "sep": ["</s>", 1]})",
        R"("post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [4294967297]}}})"}) {
    try {
      Tokenizer::from_json_text("{" + model + ", " + field + "}", "ints.json");
      ADD_FAILURE() << "accepted " << field;
    } catch (const TokenizerError& e) {
      EXPECT_NE(std::string(e.what()).find("must be an integer from 0 to"), std::string::npos) << e.what();
    }
  }
  auto tok = Tokenizer::from_json_text("{" + model + R"(, "truncation": {"max_length": 1}, "decoder": {"type": "Strip", "content": "a", "start": 1, "stop": 0}})", "ok.json");
  EXPECT_EQ(tok->encode("ab ab"), (std::vector<int32_t>{2}));
}

TEST(TokenizerApi, ReadsTokenizerConfigForms) {
  auto dir = std::filesystem::temp_directory_path() / ("lorax_tok_cfg_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2},
      "merges": [["a", "b"]]}, "added_tokens": [{"id": 3, "content": "</s>", "special": true}]})";
  // Token strings as plain strings and as AddedToken dicts; chat_template in its list form.
  std::ofstream(dir / "tokenizer_config.json") << R"({"bos_token": "<s>",
      "eos_token": {"__type": "AddedToken", "content": "</s>", "lstrip": false},
      "pad_token": null, "add_bos_token": false,
      "chat_template": [{"name": "default", "template": "D"}, {"name": "tool_use", "template": "T"}]})";
  auto tok = Tokenizer::load(dir);
  EXPECT_EQ(tok->config().bos_token, "<s>");
  EXPECT_EQ(tok->config().eos_token, "</s>");
  EXPECT_FALSE(tok->config().pad_token.has_value());
  EXPECT_EQ(tok->config().add_bos_token, false);
  EXPECT_EQ(tok->config().chat_template, "D");
  EXPECT_EQ(tok->config().chat_templates.at("tool_use"), "T");
  EXPECT_EQ(tok->encode("ab</s>"), (std::vector<int32_t>{2, 3}));
  EXPECT_EQ(tok->vocab_size(), 4u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lorax
