#include "adapters/adapter_registry.h"

#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

namespace lorax {

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw AdapterError("cannot read the adapter registry " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string string_or_empty(const nlohmann::json& o, const char* key) {
  if (!o.contains(key) || o[key].is_null()) return "";
  if (!o[key].is_string()) throw AdapterError(std::string("`") + key + "` must be a string");
  return o[key].get<std::string>();
}

}  // namespace

AdapterRegistry::AdapterRegistry(std::string path) : path_(std::move(path)) {
  std::lock_guard lock(mu_);
  refresh_locked(true);
}

std::map<std::string, AdapterRegistry::Entry> AdapterRegistry::parse(const std::string& text) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_array()) throw AdapterError("the adapter registry is not a JSON array");
  std::map<std::string, Entry> out;
  for (const auto& o : j) {
    if (!o.is_object()) throw AdapterError("adapter registry entries must be objects");
    static const std::set<std::string> keys = {"id", "source", "location", "sha256", "token_file", "preload",
                                               "generation"};
    for (const auto& [k, v] : o.items())
      if (!keys.count(k)) throw AdapterError("adapter registry: unknown key `" + k.substr(0, 64) + "`");
    // preload is the operator's (it POSTs /adapters on every ready pod); checked here so a typo is not silent.
    if (o.contains("preload") && !o["preload"].is_boolean())
      throw AdapterError("adapter registry: preload must be a boolean");
    Entry e;
    e.req.id = string_or_empty(o, "id");
    check_adapter_id(e.req.id);
    e.req.source = string_or_empty(o, "source");
    if (e.req.source != "hub" && e.req.source != "url" && e.req.source != "s3" && e.req.source != "local")
      throw AdapterError("adapter registry entry `" + e.req.id + "`: source must be hub, url, s3 or local");
    e.req.location = string_or_empty(o, "location");
    check_adapter_id(e.req.location);
    e.req.sha256 = string_or_empty(o, "sha256");
    e.req.registered = true;
    e.token_file = string_or_empty(o, "token_file");
    e.preload = o.contains("preload") && o["preload"].get<bool>();
    if (o.contains("generation")) {
      if (!o["generation"].is_number_integer() || o["generation"].get<long long>() < 0)
        throw AdapterError("adapter registry entry `" + e.req.id + "`: generation must be a non-negative integer");
      e.generation = o["generation"].get<long long>();
    }
    if (!out.emplace(e.req.id, e).second) throw AdapterError("adapter registry: id `" + e.req.id + "` is listed twice");
  }
  return out;
}

void AdapterRegistry::refresh_locked(bool at_start) {
  const auto now = std::chrono::steady_clock::now();
  if (!at_start && now - checked_ < std::chrono::seconds(1)) return;
  checked_ = now;
  std::error_code ec;
  const auto mtime = std::filesystem::last_write_time(path_, ec);  // follows the ConfigMap's ..data link
  if (ec) {
    if (at_start) throw AdapterError("cannot read the adapter registry " + path_ + ": " + ec.message());
    return;
  }
  if (!at_start && mtime == mtime_) return;
  mtime_ = mtime;
  try {
    entries_ = parse(read_file(path_));
  } catch (const AdapterError& e) {
    if (at_start) throw;
    std::fprintf(stderr, "lorax-engine: adapter registry %s: %s (keeping the previous list)\n", path_.c_str(), e.what());
  }
}

std::optional<AdapterRequest> AdapterRegistry::lookup(const std::string& id) {
  std::lock_guard lock(mu_);
  refresh_locked(false);
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  AdapterRequest r = it->second.req;
  if (!it->second.token_file.empty()) {
    // A mounted Secret key: read on every load, so a rotated token is used at once.
    std::string token = read_file(it->second.token_file);
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
    r.api_token = token;
  }
  return r;
}

std::optional<long long> AdapterRegistry::generation(const std::string& id) {
  std::lock_guard lock(mu_);
  refresh_locked(false);
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  return it->second.generation;
}

std::vector<std::string> AdapterRegistry::ids() {
  std::lock_guard lock(mu_);
  refresh_locked(false);
  std::vector<std::string> out;
  for (const auto& [id, e] : entries_) out.push_back(id);
  return out;
}

std::vector<std::string> AdapterRegistry::preloaded_ids() {
  std::lock_guard lock(mu_);
  refresh_locked(false);
  std::vector<std::string> out;
  for (const auto& [id, e] : entries_)
    if (e.preload) out.push_back(id);
  return out;
}

}  // namespace lorax
