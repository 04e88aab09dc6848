// Fuzzes what the server does with a POST /generate body: the raw-text JSON
// limits (json_limit_problem), nlohmann's parse, then parse_generate_body.
// A ValidationError is the expected answer to a bad body; any other exception
// escaping, a sanitizer report, or a body that passes the limit check but
// parses deeper or wider than the limits is a finding.
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fuzz_util.h"
#include "json_shape.h"
#include "server/api/generate_api.h"
#include "server/api/json_limits.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (!lorax::json_limit_problem(text).empty()) return 0;  // the server answers 422 before parsing
  const nlohmann::json body = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  if (body.is_discarded()) return 0;
  const lorax_fuzz::JsonShape shape = lorax_fuzz::json_shape(body);
  if (shape.depth > lorax::kMaxJsonDepth || shape.max_members > lorax::kMaxJsonMembers)
    lorax_fuzz::broken("json_limit_problem", "passed a body of depth " + std::to_string(shape.depth) + " and " +
                                                 std::to_string(shape.max_members) + " members in one container");
  try {
    const lorax::GenerateBody b = lorax::parse_generate_body(body);
    // What the server reads next; must be consistent with what was accepted.
    if (b.parameters.max_new_tokens && *b.parameters.max_new_tokens <= 0)
      lorax_fuzz::broken("parse_generate_body", "accepted max_new_tokens <= 0");
    if (!b.parameters.sampling.validate().empty())
      lorax_fuzz::broken("parse_generate_body", "accepted sampling parameters that fail validate()");
    // An accepted integer field holds the number the client sent (no silent narrowing).
    if (body.contains("parameters") && body["parameters"].is_object()) {
      const nlohmann::json& p = body["parameters"];
      auto same = [&](const char* key, int64_t got) {
        if (p.contains(key) && p[key].is_number_integer() && p[key].get<int64_t>() != got)
          lorax_fuzz::broken("parse_generate_body", std::string("accepted `") + key + "` " + p[key].dump() +
                                                        " as " + std::to_string(got));
      };
      if (b.parameters.max_new_tokens) same("max_new_tokens", *b.parameters.max_new_tokens);
      if (b.parameters.truncate) same("truncate", *b.parameters.truncate);
      same("top_k", b.parameters.sampling.top_k);
    }
  } catch (const lorax::ValidationError&) {
  } catch (...) {
    lorax_fuzz::unexpected("parse_generate_body");
  }
  return 0;
}
