#include "server/route_handlers.h"

#include "server/api/generate_api.h"
#include "server/openai_api.h"
#include "server/response_formats.h"

namespace lorax::server {

using namespace Pistache;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

// Parses, validates and tokenizes on this HTTP thread, then hands the request
// (one engine request per sequence it asks for) to the engine thread.
void answer_generation(RouteCall& c, Api api) {
  Server::State& s = c.s;
  if (s.config.embedding_dimension > 0)
    return send_error(c.w, Http::Code::Unprocessable_Entity,
                      "this is an embedding model: it serves /embed and /v1/embeddings and cannot generate text",
                      "validation");
  s.metrics.request_count.inc();
  if (!s.ready) {
    s.metrics.failure("overloaded");
    return send_error(c.w, Http::Code::Service_Unavailable, "the server is shutting down", "overloaded");
  }
  GenerationRequest greq;
  std::shared_ptr<AdapterTicket> adapter;
  AdapterRequest adapter_req;  // id empty: the base model
  std::unique_ptr<ResponseFormat> format;
  bool stream = false;
  int sequences = 1;
  std::optional<MergedAdaptersParams> merge;
  const bool ok = parsed(c, [&] {
    ojson body = ojson::parse(c.req.body(), nullptr, false);
    if (body.is_discarded()) throw ValidationError("request body is not valid JSON");
    if (api == Api::Compat || api == Api::Generate || api == Api::GenerateStream) {
      if (!body.is_object()) throw ValidationError("request body must be a JSON object");
      if (body.contains("stream") && !body["stream"].is_null() && !body["stream"].is_boolean())
        throw ValidationError("`stream` must be a boolean");
      const bool stream_asked = body.contains("stream") && body["stream"].is_boolean() && body["stream"].get<bool>();
      stream = api == Api::GenerateStream || (api == Api::Compat && stream_asked);
      GenerateBody gb = parse_generate_body(json::parse(body.dump()));
      if (gb.parameters.best_of > s.config.max_best_of)
        throw ValidationError("`best_of` must be > 0 and <= " + std::to_string(s.config.max_best_of) +
                              ". Given: " + std::to_string(gb.parameters.best_of));
      if (gb.parameters.best_of > 1 && stream) throw ValidationError("`best_of` != 1 is not allowed for this endpoint");
      sequences = gb.parameters.best_of;
      adapter_req = {gb.parameters.adapter_id.value_or(""), gb.parameters.adapter_source.value_or(""),
                     gb.parameters.api_token.value_or(""), ""};
      merge = gb.parameters.merged_adapters;
      gb.parameters.adapter_id.reset();
      greq = build_generation_request(gb, *s.tokenizer, s.config.limits);
      format = std::make_unique<LoraxFormat>(gb.parameters, gb.inputs, greq.prompt_ids.size(),
                                             api == Api::Compat && !stream);
    } else {
      const bool chat = api == Api::Chat;
      OpenAIRequest r = chat ? parse_chat_request(body) : parse_completion_request(body);
      stream = r.stream;
      if (r.best_of > s.config.max_best_of)
        throw ValidationError(std::string(r.best_of > r.n ? "`best_of`" : "`n`") + " must be at most " +
                              std::to_string(s.config.max_best_of) + " (--max-best-of)");
      sequences = r.best_of;
      if (chat) {
        greq = build_generation_request(s.tokenizer->encode(s.render_chat(r), false), r.params, s.config.limits);
      } else {
        GenerateBody gb{r.prompt, r.params};
        greq = build_generation_request(gb, *s.tokenizer, s.config.limits);
      }
      greq.token_pieces = r.logprobs;
      greq.top_n_tokens = r.top_logprobs;
      adapter_req.id = r.model;
      OpenAIIds ids{(chat ? "chatcmpl-" : "cmpl-") + std::to_string(s.next_id++), unix_now(),
                    r.model.empty() ? s.config.model_id : r.model};
      OpenAIOptions o{chat, greq.prompt_ids.size(), r.include_usage, r.echo ? r.prompt : "",
                      static_cast<size_t>(r.n), r.logprobs, r.params.stop, r.tool_spec};
      format = std::make_unique<OpenAIFormat>(ids, std::move(o), static_cast<size_t>(sequences));
    }
    s.check_capacity(greq);
    adapter = merge ? s.resolve_merge(*merge, adapter_req.source, adapter_req.api_token)
                    : s.resolve_adapter(adapter_req.id, adapter_req.source, adapter_req.api_token);
    if (adapter) {
      greq.adapter_id = adapter->id();
      greq.adapter_hold = adapter;
    }
  });
  if (!ok) return;

  auto sink = std::make_shared<HttpSink>(std::move(c.w), c.transport, std::move(format), stream,
                                         static_cast<size_t>(sequences));
  std::vector<Job> jobs;
  for (int i = 0; i < sequences; ++i) {
    GenerationRequest copy = greq;
    // A seeded request's sequences differ and are each reproducible: sequence i draws from seed + i.
    if (copy.sampling.seed) copy.sampling.seed = *copy.sampling.seed + static_cast<uint64_t>(i);
    jobs.push_back(Job{std::move(copy), sink->choice(static_cast<size_t>(i)), adapter});
  }
  submit_jobs(s, sink, std::move(jobs));
}

}  // namespace lorax::server
