#include "server/adapter_routes.h"

#include <algorithm>
#include <optional>
#include <set>
#include <thread>

namespace lorax::server {

using json = nlohmann::json;

namespace {

AdapterRouteResult error(int status, const std::string& message, const std::string& type) {
  return {status, json{{"error", message}, {"error_type", type}}};
}

// Percent-decoding of one path segment (the operator url-encodes adapter ids).
// Hand-written: a dozen lines, and Pistache exposes no decoder for path segments.
std::string url_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string string_field(const json& body, const char* name) {
  if (!body.contains(name) || body[name].is_null()) return "";
  if (!body[name].is_string()) throw std::invalid_argument(std::string("`") + name + "` must be a string");
  return body[name].get<std::string>();
}

}  // namespace

bool is_adapter_route(const std::string& path) { return path == "/adapters" || path.rfind("/adapters/", 0) == 0; }

json adapter_info_json(const AdapterInfo& i) {
  return {{"adapter_id", i.id},
          {"adapter_source", i.source},
          {"tier", i.tier},
          {"size_bytes", i.bytes},
          {"rank", i.rank},
          {"last_used", i.last_used_unix},
          {"load_seconds", i.load_seconds},
          {"promote_seconds", i.promote_seconds},
          {"requests", i.requests},
          {"in_use", i.in_use}};
}

AdapterRouteResult adapter_error_result(const AdapterError& e) {
  const int status = adapter_error_status(e);
  return error(status, e.what(), status == 404 ? "not_found" : "validation");
}

AdapterRouteResult handle_adapter_route(AdapterStore* store, const std::string& method, const std::string& path,
                                        const std::string& body) {
  if (!store) return error(404, "adapters are not enabled on this server", "not_found");
  if (path == "/adapters") {
    if (method == "GET") {
      json list = json::array();
      for (const AdapterInfo& i : store->list()) list.push_back(adapter_info_json(i));
      return {200, json{{"adapters", list}}};
    }
    if (method != "POST") return error(405, "method not allowed", "validation");
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return error(422, "body must be a JSON object", "validation");
    AdapterRequest req;
    try {
      req.id = string_field(j, "adapter_id");
      req.source = string_field(j, "adapter_source");
      req.api_token = string_field(j, "api_token");
      req.sha256 = string_field(j, "sha256");
    } catch (const std::invalid_argument& e) {
      return error(422, e.what(), "validation");
    }
    if (req.id.empty()) return error(422, "`adapter_id` is required", "validation");
    try {
      store->load(req);
    } catch (const AdapterError& e) {
      return adapter_error_result(e);
    }
    // Onto the device when a slot is free or held by an adapter nobody uses; else it waits in the host tier.
    std::set<std::string> keep;
    for (const AdapterInfo& i : store->list())
      if (i.id != req.id && i.requests > 0) keep.insert(i.id);
    for (int i = 0; i < 10000 && store->make_resident(req.id, keep).state == AdapterResidency::State::Pending; ++i)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    for (const AdapterInfo& i : store->list())
      if (i.id == req.id) return {200, adapter_info_json(i)};
    return error(409, "adapter `" + req.id + "` was evicted right after loading", "validation");
  }
  const std::string id = url_decode(path.substr(std::string("/adapters/").size()));
  if (method == "GET") {  // one adapter: whether this pod knows it (registry) and whether it is loaded
    std::optional<long long> generation;
    if (AdapterRegistry* reg = store->registry()) generation = reg->generation(id);
    const bool registered = generation.has_value();
    json out = {{"adapter_id", id}, {"loaded", false}};
    for (const AdapterInfo& i : store->list())
      if (i.id == id) {
        out = adapter_info_json(i);
        out["loaded"] = true;
      }
    out["registered"] = registered;
    if (registered && *generation >= 0) out["registry_generation"] = *generation;
    if (!registered && !out["loaded"].get<bool>())
      return error(404, "adapter `" + id + "` is neither registered nor loaded", "not_found");
    return {200, out};
  }
  if (method != "DELETE") return error(405, "method not allowed", "validation");
  switch (store->unload(id)) {
    case AdapterStore::Unload::Ok: return {200, json{{"adapter_id", id}, {"unloaded", true}}};
    case AdapterStore::Unload::NotFound: return error(404, "adapter `" + id + "` is not loaded", "not_found");
    case AdapterStore::Unload::InUse: break;
  }
  return error(409, "adapter `" + id + "` is in use by queued or running requests", "validation");
}

}  // namespace lorax::server
