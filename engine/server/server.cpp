#include "server/server.h"

#include <chrono>
#include <filesystem>
#include <map>
#include <strings.h>
#include <mutex>
#include <set>
#include <thread>

#include <openssl/crypto.h>
#include <pistache/endpoint.h>
#include <pistache/http.h>

#include "adapters/adapter_merge.h"
#include "server/adapter_metrics.h"
#include "server/adapter_routes.h"
#include "server/api/json_fields.h"
#include "server/api/json_limits.h"
#include "server/connection_guard.h"
#include "server/embeddings_api.h"
#include "server/engine_loop.h"
#include "server/http_sink.h"
#include "server/openai_api.h"
#include "server/response_formats.h"
#include "server/server_metrics.h"
#include "tokenizer/chat_template.h"

namespace lorax::server {

using namespace Pistache;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {

struct NotFound : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct ChatTemplates {
  std::optional<ChatTemplateConfig> plain, with_tools;
  std::optional<ChatTemplate> plain_tmpl, tools_tmpl;
  std::string load_error;
  std::mutex mu;  // rendering is cheap; one at a time keeps the interpreter's thread-safety moot
};

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

struct Server::State {
  ServerConfig config;
  Engine& engine;
  std::shared_ptr<const Tokenizer> tokenizer;
  metrics::Registry registry;
  ServerMetrics metrics{registry};
  AdapterMetrics adapter_metrics{registry};
  EngineLoop loop;
  ChatTemplates chat;
  int64_t kv_capacity_tokens;
  int64_t started = unix_now();
  std::atomic<uint64_t> next_id{1};
  std::atomic<bool> ready{false};
  std::unique_ptr<Http::Endpoint> endpoint;

  State(ServerConfig cfg, Engine& e, std::shared_ptr<const Tokenizer> tok)
      : config(std::move(cfg)),
        engine(e),
        tokenizer(std::move(tok)),
        loop(e, metrics, config.max_waiting_requests),
        kv_capacity_tokens(static_cast<int64_t>(e.kv().allocator().num_blocks()) * e.kv().block_size()) {
    try {
      chat.plain = load_chat_template_config(config.model_dir);
      chat.plain_tmpl.emplace(chat.plain->source);
      chat.with_tools = load_chat_template_config(config.model_dir, "", true);
      chat.tools_tmpl.emplace(chat.with_tools->source);
    } catch (const std::exception& e) {
      chat.load_error = e.what();
    }
    if (config.adapters) {
      adapter_metrics.attach(*config.adapters);
      loop.set_adapter_metrics(&adapter_metrics);
    }
  }

  // `name` (an adapter id or OpenAI `model`) -> null for the base model, else a
  // ticket for the adapter: its load runs on the store's loader pool while the
  // request waits in the engine loop, so this HTTP thread returns at once.
  std::shared_ptr<AdapterTicket> resolve_adapter(const std::string& name, const std::string& source = "",
                                                 const std::string& api_token = "") {
    if (name.empty() || name == config.model_id || name == config.model_dir ||
        name == std::filesystem::path(config.model_dir).filename().string())
      return nullptr;
    check_adapter_id(name);
    if (!config.adapters) throw NotFound("adapter `" + name + "` not found");
    return config.adapters->request({name, source, api_token, ""});
  }

  // LoRAX merged_adapters: a ticket for the merged adapter (built once on the
  // loader pool from its sources, named by its parameters, then served like any adapter).
  std::shared_ptr<AdapterTicket> resolve_merge(const MergedAdaptersParams& m, const std::string& source,
                                               const std::string& api_token) {
    if (!config.adapters) throw NotFound("adapters are not enabled on this server");
    auto spec = std::make_shared<MergeSpec>();
    for (const std::string& id : m.ids) {
      check_adapter_id(id);
      spec->adapters.push_back({id, source, api_token, ""});
    }
    spec->weights = m.weights;
    spec->strategy = merge_strategy_named(m.merge_strategy);
    spec->density = m.density;
    spec->majority_sign = majority_sign_named(m.majority_sign_method);
    validate_merge(*spec);
    AdapterRequest req{spec->id(), "merge", api_token, ""};
    req.merge = spec;
    return config.adapters->request(req);
  }

  void check_capacity(const GenerationRequest& req) const {
    const int64_t need = static_cast<int64_t>(req.prompt_ids.size()) + req.stopping.max_new_tokens;
    if (need > kv_capacity_tokens)
      throw ValidationError("`inputs` tokens + `max_new_tokens` (" + std::to_string(need) +
                            ") exceed the KV cache capacity of " + std::to_string(kv_capacity_tokens) + " tokens");
  }

  std::string render_chat(const OpenAIRequest& r) {
    std::lock_guard lock(chat.mu);
    const bool tools = !r.tools.is_null();
    if (!chat.plain_tmpl) throw ValidationError("the model has no chat template: " + chat.load_error);
    const ChatTemplateConfig& cfg = tools ? *chat.with_tools : *chat.plain;
    ojson ctx = default_chat_context(cfg);
    ctx["messages"] = r.messages;
    if (tools) ctx["tools"] = r.tools;
    ctx["add_generation_prompt"] = true;
    try {
      return (tools ? *chat.tools_tmpl : *chat.plain_tmpl).render(ctx);
    } catch (const TemplateError& e) {
      throw ValidationError(std::string("chat template: ") + e.what());
    }
  }
};

namespace {

enum class Api { Compat, Generate, GenerateStream, Completions, Chat };

class RestHandler : public Http::Handler {
 public:
  HTTP_PROTOTYPE(RestHandler)
  explicit RestHandler(std::shared_ptr<Server::State> state) : s_(std::move(state)) {}

  void onRequest(const Http::Request& req, Http::ResponseWriter w) override {
    try {
      route(req, w);
    } catch (const nlohmann::json::exception&) {
      // A field of a type the parsers did not expect: the client's error, and the
      // message must not echo its (possibly huge) content.
      send_error(w, Http::Code::Unprocessable_Entity, "a request field has the wrong type", "validation");
    } catch (const std::exception& e) {
      send_error(w, Http::Code::Internal_Server_Error, e.what(), "generation");
    }
  }

 private:
  void route(const Http::Request& req, Http::ResponseWriter& w) {
    std::string path = req.resource();
    if (auto q = path.find('?'); q != std::string::npos) path.resize(q);
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    const Http::Method m = req.method();
    const bool get = m == Http::Method::Get, post = m == Http::Method::Post;

    if (path == "/health") {
      if (!get) return method_not_allowed(w);
      if (s_->ready && s_->loop.running())
        send_text(w, Http::Code::Ok, "", MIME(Text, Plain));
      else
        send_error(w, Http::Code::Service_Unavailable, "not ready", "overloaded");
      return;
    }
    if (path == "/metrics") {
      if (!get) return method_not_allowed(w);
      if (s_->config.metrics_require_key && !authorized(req))
        return send_error(w, Http::Code::Unauthorized, "invalid or missing API key", "unauthorized");
      send_text(w, Http::Code::Ok, s_->registry.serialize(), Http::Mime::MediaType::fromString(metrics::kContentType));
      return;
    }
    static const std::set<std::string> known = {"/", "/generate", "/generate_stream", "/v1/completions",
                                                "/v1/chat/completions", "/v1/models", "/tokenize", "/info", "/embed",
                                                "/v1/embeddings"};
    if (is_adapter_route(path)) {
      if (!authorized(req))
        return send_error(w, Http::Code::Unauthorized, "invalid or missing API key", "unauthorized");
      if (post && !within_json_limits(req, w)) return;
      const char* method = get ? "GET" : post ? "POST" : m == Http::Method::Delete ? "DELETE" : "OTHER";
      AdapterRouteResult r = handle_adapter_route(s_->config.adapters, method, path, req.body());
      return send_json(w, static_cast<Http::Code>(r.status), r.body);
    }
    if (!known.count(path)) {
      send_error(w, Http::Code::Not_Found, "no route " + path, "not_found");
      return;
    }
    if (!authorized(req)) {
      send_error(w, Http::Code::Unauthorized, "invalid or missing API key", "unauthorized");
      return;
    }
    const bool is_get_route = path == "/v1/models" || path == "/info";
    if (is_get_route ? !get : !post) return method_not_allowed(w);
    if (post && !within_json_limits(req, w)) return;
    if (path == "/info") return send_json(w, Http::Code::Ok, info());
    if (path == "/v1/models") return send_json(w, Http::Code::Ok, models());
    if (path == "/tokenize") return tokenize(req, w);
    const bool embedding_route = path == "/embed" || path == "/v1/embeddings";
    if (embedding_route && s_->config.embedding_dimension == 0)
      return send_error(w, Http::Code::Not_Found, "the model is not an embedding model", "not_found");
    if (embedding_route) return embeddings(req, w, path == "/v1/embeddings");
    if (s_->config.embedding_dimension > 0)
      return send_error(w, Http::Code::Unprocessable_Entity,
                        "this is an embedding model: it serves /embed and /v1/embeddings and cannot generate text",
                        "validation");
    if (path == "/") return generation(req, w, Api::Compat);
    if (path == "/generate") return generation(req, w, Api::Generate);
    if (path == "/generate_stream") return generation(req, w, Api::GenerateStream);
    if (path == "/v1/completions") return generation(req, w, Api::Completions);
    return generation(req, w, Api::Chat);
  }

  // Before any parse of the body (see json_limits.h).
  static bool within_json_limits(const Http::Request& req, Http::ResponseWriter& w) {
    const std::string problem = json_limit_problem(req.body());
    if (problem.empty()) return true;
    send_error(w, Http::Code::Unprocessable_Entity, problem, "validation");
    return false;
  }

  static void method_not_allowed(Http::ResponseWriter& w) {
    send_error(w, Http::Code::Method_Not_Allowed, "method not allowed", "validation");
  }

  // `Authorization: Bearer KEY`, the scheme case-insensitive (RFC 9110 §11.1), the
  // key compared in constant time so its prefix cannot be guessed from timings.
  bool authorized(const Http::Request& req) const {
    const std::string& key = s_->config.api_key;
    if (key.empty()) return true;
    auto h = req.headers().tryGetRaw("Authorization");
    if (!h) return false;
    const std::string& v = h->value();
    if (v.size() < 7 || strncasecmp(v.c_str(), "Bearer ", 7) != 0) return false;
    const std::string_view given = std::string_view(v).substr(7);
    return given.size() == key.size() && CRYPTO_memcmp(given.data(), key.data(), key.size()) == 0;
  }

  json info() const {
    const ServerConfig& c = s_->config;
    json j = {{"model_id", c.model_id},
              {"model_dtype", c.model_dtype},
              {"model_device_type", c.device_type},
              {"model_pipeline_tag", c.embedding_dimension > 0 ? "feature-extraction" : "text-generation"},
              {"max_input_length", c.limits.max_input_length},
              {"max_total_tokens", c.limits.max_total_tokens},
              {"max_waiting_requests", c.max_waiting_requests},
              {"max_best_of", c.max_best_of},
              {"max_top_n_tokens", kMaxTopTokens},
              {"max_stop_sequences", kMaxStopSequences},
              {"block_size", s_->engine.kv().block_size()},
              {"kv_cache_tokens", s_->kv_capacity_tokens},
              {"preloaded_adapters", preloaded_adapters()},
              {"chat_template", s_->chat.plain_tmpl.has_value()},
              {"version", "0.1.0"},
              {"sha", nullptr},
              {"docker_label", nullptr}};
    for (auto& [k, v] : c.info_extra.items()) j[k] = v;
    if (c.embedding_dimension > 0) j["embedding_dimension"] = c.embedding_dimension;
    if (c.adapters) {  // the adapter limits a router can plan with
      const AdapterStoreConfig& a = c.adapters->config();
      j["max_loaded_adapters"] = a.max_device;
      j["max_host_adapters"] = a.max_host;
      j["max_host_adapter_bytes"] = a.max_host_bytes;
      j["max_active_adapters"] = s_->engine.config().max_active_adapters;
      j["adapter_cycle_time_s"] = s_->engine.config().adapter_cycle_time_s;
    }
    return j;
  }

  // The registry's adapters marked preload (the operator loads them on every ready pod), and where each is now.
  json preloaded_adapters() const {
    json out = json::array();
    AdapterStore* store = s_->config.adapters;
    if (!store || !store->registry()) return out;
    std::map<std::string, std::string> tiers;
    for (const AdapterInfo& a : store->list()) tiers[a.id] = a.tier;
    for (const std::string& id : store->registry()->preloaded_ids()) {
      auto it = tiers.find(id);
      out.push_back({{"adapter_id", id}, {"tier", it == tiers.end() ? json(nullptr) : json(it->second)}});
    }
    return out;
  }

  json models() const {
    json data = json::array({{{"id", s_->config.model_id},
                              {"object", "model"},
                              {"created", s_->started},
                              {"owned_by", "lorax"}}});
    // Loaded adapters, then the registered ones (--adapter-registry) not loaded yet: both are models a client may name.
    auto add = [&](const std::string& id) {
      data.push_back({{"id", id}, {"object", "model"}, {"created", s_->started}, {"owned_by", "lorax"},
                      {"parent", s_->config.model_id}});
    };
    if (AdapterStore* store = s_->config.adapters) {
      std::set<std::string> listed;
      for (const AdapterInfo& a : store->list())
        if (listed.insert(a.id).second) add(a.id);
      if (AdapterRegistry* reg = store->registry())
        for (const std::string& id : reg->ids())
          if (listed.insert(id).second) add(id);
    }
    return {{"object", "list"}, {"data", data}};
  }

  void tokenize(const Http::Request& req, Http::ResponseWriter& w) {
    json body = json::parse(req.body(), nullptr, false);
    if (body.is_discarded() || !body.is_object() || !body.contains("inputs") || !body["inputs"].is_string())
      return send_error(w, Http::Code::Unprocessable_Entity, "body must be {\"inputs\": string}", "validation");
    // Bounded so the answer (about 25 bytes a token) stays far below the 64 MiB response limit
    // and one request costs at most about a second of this thread.
    constexpr size_t kMaxTokenizeBytes = 1 << 20;
    if (body["inputs"].get_ref<const std::string&>().size() > kMaxTokenizeBytes)
      return send_error(w, Http::Code::Request_Entity_Too_Large,
                        "`inputs` of /tokenize must be at most " + std::to_string(kMaxTokenizeBytes) + " bytes",
                        "validation");
    bool special = true;
    if (body.contains("add_special_tokens")) {
      if (!body["add_special_tokens"].is_boolean())
        return send_error(w, Http::Code::Unprocessable_Entity, "`add_special_tokens` must be a boolean", "validation");
      special = body["add_special_tokens"].get<bool>();
    }
    json out = json::array();
    for (int32_t id : s_->tokenizer->encode(body["inputs"].get<std::string>(), special))
      out.push_back({{"id", id}, {"text", s_->tokenizer->decode(std::span<const int32_t>(&id, 1), false)}});
    send_json(w, Http::Code::Ok, out);
  }

  // Runs `parse` (this HTTP thread's validation of a request); a client error it
  // throws is answered and counted here, and the caller returns (false).
  template <typename Parse>
  bool parsed(Http::ResponseWriter& w, Parse&& parse) {
    Server::State& s = *s_;
    try {
      parse();
      return true;
    } catch (const ValidationError& e) {
      s.metrics.failure("validation");
      send_error(w, Http::Code::Unprocessable_Entity, e.what(), "validation");
    } catch (const NotFound& e) {
      s.metrics.failure("not_found");
      send_error(w, Http::Code::Not_Found, e.what(), "not_found");
    } catch (const AdapterError& e) {
      AdapterRouteResult r = adapter_error_result(e);
      s.metrics.failure(r.body["error_type"].get<std::string>());
      send_error(w, static_cast<Http::Code>(r.status), e.what(), r.body["error_type"].get<std::string>());
    } catch (const TokenizerError& e) {
      s.metrics.failure("validation");
      send_error(w, Http::Code::Unprocessable_Entity, e.what(), "validation");
    }
    return false;
  }

  // One engine request per text, batched by the scheduler like prefills; the answer once all are pooled.
  void embeddings(const Http::Request& req, Http::ResponseWriter& w, bool openai) {
    Server::State& s = *s_;
    s.metrics.request_count.inc();
    if (!s.ready) {
      s.metrics.failure("overloaded");
      return send_error(w, Http::Code::Service_Unavailable, "the server is shutting down", "overloaded");
    }
    std::vector<GenerationRequest> requests;
    std::shared_ptr<AdapterTicket> adapter;
    std::string model;
    EmbedRequest r;
    const bool ok = parsed(w, [&] {
      json body = json::parse(req.body(), nullptr, false);
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
    auto sink = std::make_shared<HttpSink>(std::move(w), transport(), std::move(format), false, requests.size());
    std::vector<Job> jobs;
    for (size_t i = 0; i < requests.size(); ++i) {
      if (adapter) {
        requests[i].adapter_id = adapter->id();
        requests[i].adapter_hold = adapter;
      }
      jobs.push_back(Job{std::move(requests[i]), sink->choice(i), adapter});
    }
    submit(s, sink, std::move(jobs));
  }

  static void submit(Server::State& s, const std::shared_ptr<HttpSink>& sink, std::vector<Job> jobs) {
    switch (s.loop.submit(std::move(jobs))) {
      case EngineLoop::Admit::Accepted: return;
      case EngineLoop::Admit::QueueFull:
        s.metrics.failure("overloaded");
        return sink->refuse(Http::Code::Too_Many_Requests, "the request queue is full", "overloaded");
      case EngineLoop::Admit::ShuttingDown:
        s.metrics.failure("overloaded");
        return sink->refuse(Http::Code::Service_Unavailable, "the server is shutting down", "overloaded");
    }
  }

  // Parses, validates and tokenizes on this HTTP thread, then hands the request
  // (one engine request per sequence it asks for) to the engine thread.
  void generation(const Http::Request& req, Http::ResponseWriter& w, Api api) {
    Server::State& s = *s_;
    s.metrics.request_count.inc();
    if (!s.ready) {
      s.metrics.failure("overloaded");
      return send_error(w, Http::Code::Service_Unavailable, "the server is shutting down", "overloaded");
    }
    GenerationRequest greq;
    std::shared_ptr<AdapterTicket> adapter;
    AdapterRequest adapter_req;  // id empty: the base model
    std::unique_ptr<ResponseFormat> format;
    bool stream = false;
    int sequences = 1;
    std::optional<MergedAdaptersParams> merge;
    const bool ok = parsed(w, [&] {
      ojson body = ojson::parse(req.body(), nullptr, false);
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

    auto sink = std::make_shared<HttpSink>(std::move(w), transport(), std::move(format), stream,
                                           static_cast<size_t>(sequences));
    std::vector<Job> jobs;
    for (int i = 0; i < sequences; ++i) {
      GenerationRequest copy = greq;
      // A seeded request's sequences differ and are each reproducible: sequence i draws from seed + i.
      if (copy.sampling.seed) copy.sampling.seed = *copy.sampling.seed + static_cast<uint64_t>(i);
      jobs.push_back(Job{std::move(copy), sink->choice(static_cast<size_t>(i)), adapter});
    }
    submit(s, sink, std::move(jobs));
  }

  std::shared_ptr<Server::State> s_;
};

}  // namespace

Server::Server(ServerConfig config, Engine& engine, std::shared_ptr<const Tokenizer> tokenizer)
    : state_(std::make_shared<State>(std::move(config), engine, std::move(tokenizer))) {}

Server::~Server() {
  if (state_->endpoint) shutdown(std::chrono::milliseconds(0));
}

void Server::start() {
  State& s = *state_;
  s.loop.start();
  Address addr(s.config.host, Port(static_cast<uint16_t>(s.config.port)));
  s.endpoint = std::make_unique<Http::Endpoint>(addr);
  constexpr size_t kMaxRequestBytes = 16 << 20;
  auto opts = Http::Endpoint::options()
                  .threads(s.config.http_threads)
                  .flags(Tcp::Options::ReuseAddr)
                  .maxRequestSize(kMaxRequestBytes)
                  .maxResponseSize(64 << 20)
                  .headerTimeout(std::chrono::seconds(10))
                  .bodyTimeout(std::chrono::seconds(60))
                  // Reaps connections idle between requests; a peer streaming a response
                  // is not idle (HttpSink marks it idle only when its stream ends).
                  .keepaliveTimeout(std::chrono::milliseconds(static_cast<long long>(s.config.keepalive_s * 1000)));
  s.endpoint->init(opts);
  auto budget = std::make_shared<ConnectionBudget>(s.config.max_connections, kMaxRequestBytes, s.registry);
  s.endpoint->setHandler(ConnectionGuard::create(Http::make_handler<RestHandler>(state_), std::move(budget)));
  s.endpoint->serveThreaded();
  s.ready = true;
}

uint16_t Server::port() const { return state_->endpoint ? static_cast<uint16_t>(state_->endpoint->getPort()) : 0; }

bool Server::shutdown(std::chrono::milliseconds timeout) {
  State& s = *state_;
  s.ready = false;
  s.loop.close();
  const bool drained = s.loop.drain(Clock::now() + timeout);
  s.loop.stop();  // cancels what is left; its clients get a 503 or the end of their stream
  // Let the reactor threads put the last queued writes on the wire.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  if (s.endpoint) {
    s.endpoint->shutdown();
    s.endpoint.reset();
  }
  return drained;
}

}  // namespace lorax::server
