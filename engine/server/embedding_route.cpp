#include "server/route_handlers.h"

#include "server/embeddings_api.h"

namespace lorax::server {

using namespace Pistache;
using json = nlohmann::json;

// One engine request per text, batched by the scheduler like prefills; the answer once all are pooled.
void answer_embeddings(RouteCall& c, bool openai) {
  Server::State& s = c.s;
  if (s.config.embedding_dimension == 0)
    return send_error(c.w, Http::Code::Not_Found, "the model is not an embedding model", "not_found");
  s.metrics.request_count.inc();
  if (!s.ready) {
    s.metrics.failure("overloaded");
    return send_error(c.w, Http::Code::Service_Unavailable, "the server is shutting down", "overloaded");
  }
  std::vector<GenerationRequest> requests;
  std::shared_ptr<AdapterTicket> adapter;
  std::string model;
  EmbedRequest r;
  const bool ok = parsed(c, [&] {
    json body = json::parse(c.req.body(), nullptr, false);
    if (body.is_discarded()) throw ValidationError("request body is not valid JSON");
    r = openai ? parse_openai_embeddings(body, s.config.embedding_dimension) : parse_lorax_embed(body);
    std::vector<std::vector<int32_t>> prompts = r.token_inputs;
    for (const std::string& text : r.texts) prompts.push_back(s.tokenizer->encode(text, true));
    for (auto& ids : prompts) {
      if (ids.empty()) throw ValidationError("an input produced no tokens");
      if (static_cast<int>(ids.size()) > s.config.limits.max_input_length)
        throw ValidationError("an input has " + std::to_string(ids.size()) + " tokens, more than " +
                              std::to_string(s.config.limits.max_input_length) + " (--max-input-length)");
      for (int32_t id : ids)
        if (static_cast<size_t>(id) >= s.tokenizer->vocab_size())
          throw ValidationError("token id " + std::to_string(id) + " is outside the vocabulary");
      GenerationRequest g;
      g.prompt_ids = std::move(ids);
      g.embed = true;
      g.stopping.max_new_tokens = 0;
      requests.push_back(std::move(g));
    }
    model = openai ? (r.model.empty() ? s.config.model_id : r.model) : s.config.model_id;
    adapter = openai ? s.resolve_adapter(r.model) : s.resolve_adapter(r.adapter_id, r.adapter_source, r.api_token);
  });
  if (!ok) return;
  std::vector<size_t> tokens;
  for (const GenerationRequest& g : requests) tokens.push_back(g.prompt_ids.size());
  auto format = std::make_unique<EmbeddingFormat>(openai, r.base64, model, tokens);
  auto sink = std::make_shared<HttpSink>(std::move(c.w), c.transport, std::move(format), false, requests.size());
  std::vector<Job> jobs;
  for (size_t i = 0; i < requests.size(); ++i) {
    if (adapter) {
      requests[i].adapter_id = adapter->id();
      requests[i].adapter_hold = adapter;
    }
    jobs.push_back(Job{std::move(requests[i]), sink->choice(i), adapter});
  }
  submit_jobs(s, sink, std::move(jobs));
}

}  // namespace lorax::server
