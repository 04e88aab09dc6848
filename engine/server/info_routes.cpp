#include <map>
#include <set>
#include <span>

#include "server/route_handlers.h"

namespace lorax::server {

using namespace Pistache;
using json = nlohmann::json;

namespace {

// The registry's adapters marked preload (the operator loads them on every ready pod), and where each is now.
json preloaded_adapters(const Server::State& s) {
  json out = json::array();
  AdapterStore* store = s.config.adapters;
  if (!store || !store->registry()) return out;
  std::map<std::string, std::string> tiers;
  for (const AdapterInfo& a : store->list()) tiers[a.id] = a.tier;
  for (const std::string& id : store->registry()->preloaded_ids()) {
    auto it = tiers.find(id);
    out.push_back({{"adapter_id", id}, {"tier", it == tiers.end() ? json(nullptr) : json(it->second)}});
  }
  return out;
}

json info_json(const Server::State& s) {
  const ServerConfig& c = s.config;
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
            {"block_size", s.engine.kv().block_size()},
            {"kv_cache_tokens", s.kv_capacity_tokens},
            {"preloaded_adapters", preloaded_adapters(s)},
            {"chat_template", s.chat.plain_tmpl.has_value()},
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
    j["max_active_adapters"] = s.engine.config().max_active_adapters;
    j["adapter_cycle_time_s"] = s.engine.config().adapter_cycle_time_s;
  }
  return j;
}

json models_json(const Server::State& s) {
  json data = json::array({{{"id", s.config.model_id},
                            {"object", "model"},
                            {"created", s.started},
                            {"owned_by", "lorax"}}});
  // Loaded adapters, then the registered ones (--adapter-registry) not loaded yet: both are models a client may name.
  auto add = [&](const std::string& id) {
    data.push_back({{"id", id}, {"object", "model"}, {"created", s.started}, {"owned_by", "lorax"},
                    {"parent", s.config.model_id}});
  };
  if (AdapterStore* store = s.config.adapters) {
    std::set<std::string> listed;
    for (const AdapterInfo& a : store->list())
      if (listed.insert(a.id).second) add(a.id);
    if (AdapterRegistry* reg = store->registry())
      for (const std::string& id : reg->ids())
        if (listed.insert(id).second) add(id);
  }
  return {{"object", "list"}, {"data", data}};
}

}  // namespace

void answer_health(RouteCall& c) {
  if (c.s.ready && c.s.loop.running())
    send_text(c.w, Http::Code::Ok, "", MIME(Text, Plain));
  else
    send_error(c.w, Http::Code::Service_Unavailable, "not ready", "overloaded");
}

void answer_metrics(RouteCall& c) {
  send_text(c.w, Http::Code::Ok, c.s.registry.serialize(), Http::Mime::MediaType::fromString(metrics::kContentType));
}

void answer_info(RouteCall& c) { send_json(c.w, Http::Code::Ok, info_json(c.s)); }

void answer_models(RouteCall& c) { send_json(c.w, Http::Code::Ok, models_json(c.s)); }

void answer_tokenize(RouteCall& c) {
  json body = json::parse(c.req.body(), nullptr, false);
  if (body.is_discarded() || !body.is_object() || !body.contains("inputs") || !body["inputs"].is_string())
    return send_error(c.w, Http::Code::Unprocessable_Entity, "body must be {\"inputs\": string}", "validation");
  // Bounded so the answer (about 25 bytes a token) stays far below the 64 MiB response limit
  // and one request costs at most about a second of this thread.
  constexpr size_t kMaxTokenizeBytes = 1 << 20;
  if (body["inputs"].get_ref<const std::string&>().size() > kMaxTokenizeBytes)
    return send_error(c.w, Http::Code::Request_Entity_Too_Large,
                      "`inputs` of /tokenize must be at most " + std::to_string(kMaxTokenizeBytes) + " bytes",
                      "validation");
  bool special = true;
  if (body.contains("add_special_tokens")) {
    if (!body["add_special_tokens"].is_boolean())
      return send_error(c.w, Http::Code::Unprocessable_Entity, "`add_special_tokens` must be a boolean", "validation");
    special = body["add_special_tokens"].get<bool>();
  }
  json out = json::array();
  for (int32_t id : c.s.tokenizer->encode(body["inputs"].get<std::string>(), special))
    out.push_back({{"id", id}, {"text", c.s.tokenizer->decode(std::span<const int32_t>(&id, 1), false)}});
  send_json(c.w, Http::Code::Ok, out);
}

}  // namespace lorax::server
