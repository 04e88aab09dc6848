// Fuzzes what the server does with POST /v1/completions and /v1/chat/completions
// bodies: the raw-text JSON limits, nlohmann's order-keeping parse, then
// parse_completion_request and parse_chat_request (and the same body as
// /v1/embeddings and /embed would read it); an accepted chat request is
// rendered like the server does (messages and tools of the client through a
// real model's chat template, Qwen3's, in data/). ValidationError and
// TemplateError are expected answers; any other exception escaping, a
// sanitizer report or a silently narrowed integer is a finding.
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fuzz_util.h"
#include "json_shape.h"
#include "server/api/json_limits.h"
#include "server/embeddings_api.h"
#include "server/openai_api.h"
#include "tokenizer/chat_template.h"

namespace {

using ojson = nlohmann::ordered_json;

const lorax::ChatTemplate& chat_template() {
  static const lorax::ChatTemplate tmpl = [] {
    std::ifstream in(LORAX_SOURCE_DIR "/tests/fuzz/data/qwen3_chat_template.jinja");
    std::stringstream ss;
    ss << in.rdbuf();
    if (!in || ss.str().empty()) lorax_fuzz::broken("setup", "cannot read tests/fuzz/data/qwen3_chat_template.jinja");
    return lorax::ChatTemplate(ss.str());
  }();
  return tmpl;
}

// max_tokens / max_completion_tokens as accepted must be the number sent.
void check_max_tokens(const ojson& body, const lorax::server::OpenAIRequest& r, const char* where) {
  for (const char* k : {"max_completion_tokens", "max_tokens"})
    if (body.contains(k) && body[k].is_number_integer()) {
      if (!r.params.max_new_tokens || *r.params.max_new_tokens != body[k].get<int64_t>())
        lorax_fuzz::broken(where, std::string("accepted `") + k + "` " + body[k].dump() + " as " +
                                      (r.params.max_new_tokens ? std::to_string(*r.params.max_new_tokens) : "none"));
      return;  // the last one present wins
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (!lorax::json_limit_problem(text).empty()) return 0;  // the server answers 422 before parsing
  const ojson body = ojson::parse(text.begin(), text.end(), nullptr, false);
  if (body.is_discarded()) return 0;
  const lorax_fuzz::JsonShape shape = lorax_fuzz::json_shape(body);
  if (shape.depth > lorax::kMaxJsonDepth || shape.max_members > lorax::kMaxJsonMembers)
    lorax_fuzz::broken("json_limit_problem", "passed a body of depth " + std::to_string(shape.depth));
  try {
    const lorax::server::OpenAIRequest r = lorax::server::parse_completion_request(body);
    check_max_tokens(body, r, "parse_completion_request");
  } catch (const lorax::ValidationError&) {
  } catch (...) {
    lorax_fuzz::unexpected("parse_completion_request");
  }
  const nlohmann::json plain = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  try {
    const lorax::server::EmbedRequest e = lorax::server::parse_openai_embeddings(plain, 32);
    if (e.count() == 0 || e.count() > lorax::server::kMaxEmbeddingInputs)
      lorax_fuzz::broken("parse_openai_embeddings", "accepted " + std::to_string(e.count()) + " inputs");
  } catch (const lorax::ValidationError&) {
  } catch (...) {
    lorax_fuzz::unexpected("parse_openai_embeddings");
  }
  try {
    (void)lorax::server::parse_lorax_embed(plain);
  } catch (const lorax::ValidationError&) {
  } catch (...) {
    lorax_fuzz::unexpected("parse_lorax_embed");
  }
  lorax::server::OpenAIRequest chat;
  try {
    chat = lorax::server::parse_chat_request(body);
    check_max_tokens(body, chat, "parse_chat_request");
  } catch (const lorax::ValidationError&) {
    return 0;
  } catch (...) {
    lorax_fuzz::unexpected("parse_chat_request");
  }
  // The server's render_chat: transformers' context with the client's messages and tools.
  ojson ctx = ojson::object();
  ctx["messages"] = chat.messages;
  ctx["tools"] = chat.tools;
  ctx["documents"] = nullptr;
  ctx["add_generation_prompt"] = true;
  ctx["eos_token"] = "<|im_end|>";
  ctx["pad_token"] = "<|endoftext|>";
  try {
    (void)chat_template().render(ctx);
  } catch (const lorax::TemplateError&) {
  } catch (...) {
    lorax_fuzz::unexpected("ChatTemplate::render of a chat request");
  }
  return 0;
}
