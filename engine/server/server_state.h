// What every route of the server shares: the configuration, the engine loop,
// metrics, chat templates, and how a request's adapter is resolved. Defined
// here so the route files (generation_route.cpp, embedding_route.cpp,
// info_routes.cpp) and server.cpp see one definition.
#pragma once
#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <pistache/endpoint.h>

#include "adapters/adapter_merge.h"
#include "server/adapter_metrics.h"
#include "server/engine_loop.h"
#include "server/openai_api.h"
#include "server/server.h"
#include "server/server_metrics.h"
#include "tokenizer/chat_template.h"

namespace lorax::server {

// An adapter (or route) the request names that does not exist: 404.
struct NotFound : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct ChatTemplates {
  std::optional<ChatTemplateConfig> plain, with_tools;
  std::optional<ChatTemplate> plain_tmpl, tools_tmpl;
  std::string load_error;
  std::mutex mu;  // rendering is cheap; one at a time keeps the interpreter's thread-safety moot
};

inline int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

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
  std::unique_ptr<Pistache::Http::Endpoint> endpoint;

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
    nlohmann::ordered_json ctx = default_chat_context(cfg);
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

}  // namespace lorax::server
