// Cost of a constrained-decoding token mask: builds the token trie of a real
// tokenizer, then follows a valid JSON text of a nested schema token by token (the
// text tokenized as a model would write it) and times, per step: the mask from
// scratch (walk_ms), the first request's mask through a fresh per-schema cache
// (first_request_ms: states seen earlier in the text are hits), and a second
// request's (cached_us); prints one JSON line.
//   lorax-mask-bench TOKENIZER_DIR [ROUNDS]
#include <chrono>
#include <cstdio>
#include <iostream>

#include "structured/token_mask.h"
#include "tokenizer/tokenizer.h"

using namespace lorax;
using namespace lorax::structured;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: lorax-mask-bench TOKENIZER_DIR [ROUNDS]\n";
    return 2;
  }
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 3;
  auto tok = Tokenizer::load(argv[1]);
  std::set<int32_t> eos;
  if (auto id = tok->token_to_id(tok->config().eos_token.value_or(""))) eos.insert(*id);
  auto t0 = Clock::now();
  auto table = TokenTable::build(*tok, eos);
  const double build_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  const nlohmann::json schema = nlohmann::json::parse(R"({
    "type": "object", "properties": {
      "name": {"type": "string", "maxLength": 40},
      "age": {"type": "integer", "minimum": 0, "maximum": 150},
      "email": {"type": "string", "format": "email"},
      "address": {"type": "object", "properties": {"street": {"type": "string"}, "city": {"type": "string"},
                  "zip": {"type": "string", "maxLength": 10}}, "required": ["city"], "additionalProperties": false},
      "tags": {"type": "array", "items": {"enum": ["admin", "user", "guest"]}, "maxItems": 5},
      "scores": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 100}}},
    "required": ["name", "age", "address"], "additionalProperties": false})");
  const std::string text =
      R"({"name": "Ada Lovelace", "age": 36, "email": "ada@example.org", "address": {"street": "12 St James's Square", )"
      R"("city": "London", "zip": "SW1Y 4JH"}, "tags": ["admin", "user"], "scores": [99.5, 87, 100]})";
  const std::vector<int32_t> ids = tok->encode(text, false);
  double walk_ms = 0, cached_us = 0, worst_ms = 0, pure_ms = 0;
  size_t worst_step = 0;
  size_t steps = 0;
  for (int r = 0; r < rounds; ++r) {
    auto cache = std::make_shared<MaskCache>(Schema::compile(schema), table);
    Constraint c(cache, true);
    Constraint again(cache, true);
    MatchState plain = initial_state(cache->schema());
    for (int32_t id : ids) {
      auto a = Clock::now();
      compute_mask(cache->schema(), *table, plain, true);
      pure_ms += std::chrono::duration<double, std::milli>(Clock::now() - a).count();
      advance(cache->schema(), plain, table->bytes(id));
      a = Clock::now();
      c.mask();
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - a).count();
      walk_ms += ms;
      if (ms > worst_ms) worst_step = steps % ids.size();
      worst_ms = std::max(worst_ms, ms);
      a = Clock::now();
      again.mask();
      cached_us += std::chrono::duration<double, std::micro>(Clock::now() - a).count();
      if (!c.accept(id) || !again.accept(id)) {
        std::cerr << "token " << id << " (" << tok->id_to_token(id) << ") rejected\n";
        return 1;
      }
      ++steps;
    }
  }
  std::printf("{\"tokenizer\": \"%s\", \"vocab\": %zu, \"trie_nodes\": %zu, \"trie_build_ms\": %.1f, \"steps\": %zu, "
              "\"walk_ms_mean\": %.3f, \"first_request_ms_mean\": %.3f, \"first_request_ms_max\": %.3f, \"worst_after\": %s, "
              "\"cached_us_mean\": %.2f}\n",
              argv[1], table->vocab_size(), table->all().nodes.size(), build_ms, steps, pure_ms / steps, walk_ms / steps, worst_ms,
              nlohmann::json(tok->decode(std::span<const int32_t>(ids.data(), worst_step))).dump().c_str(), cached_us / steps);
  return 0;
}
