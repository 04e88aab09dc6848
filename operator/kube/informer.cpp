#include "kube/informer.h"

#include <chrono>

#include "kube/log.h"

namespace lorax::kube {

Informer::Informer(Client& client, Resource resource, std::string ns, std::string label_selector, int watch_timeout_s)
    : client_(client), resource_(std::move(resource)), ns_(std::move(ns)), selector_(std::move(label_selector)),
      watch_timeout_s_(watch_timeout_s) {}

Informer::~Informer() { stop(); }

void Informer::add_handler(Handler h) { handlers_.push_back(std::move(h)); }

void Informer::start() { thread_ = std::thread([this] { run(); }); }

void Informer::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.detach();  // a blocked watch ends at its server-side timeout
}

std::string Informer::key_of(const json& obj) {
  const json& m = obj.at("metadata");
  return m.value("namespace", "") + "/" + m.at("name").get<std::string>();
}

std::optional<json> Informer::get(const std::string& ns, const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = store_.find(ns + "/" + name);
  if (it == store_.end()) return std::nullopt;
  return it->second;
}

std::vector<json> Informer::list(const std::string& ns) const {
  std::lock_guard lock(mu_);
  std::vector<json> out;
  for (const auto& [k, v] : store_)
    if (ns.empty() || k.compare(0, ns.size() + 1, ns + "/") == 0) out.push_back(v);
  return out;
}

void Informer::apply_event(const std::string& type, const json& obj) {
  std::string key = key_of(obj);
  {
    std::lock_guard lock(mu_);
    if (type == "DELETED") store_.erase(key);
    else store_[key] = obj;
  }
  for (auto& h : handlers_) h(type, obj);
}

void Informer::relist() {
  std::string q = resource_.collection(ns_);
  if (!selector_.empty()) q += "?labelSelector=" + url_encode(selector_);
  json list = client_.get(q);
  std::map<std::string, json> fresh;
  for (auto& item : list.value("items", json::array())) {
    // Lists omit each item's apiVersion/kind; the handlers and builders want them.
    std::string kind = list.value("kind", "");
    if (kind.size() > 4 && kind.compare(kind.size() - 4, 4, "List") == 0) kind.resize(kind.size() - 4);
    if (!item.contains("kind")) item["kind"] = kind;
    if (!item.contains("apiVersion")) item["apiVersion"] = list.value("apiVersion", "");
    fresh[key_of(item)] = item;
  }
  std::map<std::string, json> old;
  {
    std::lock_guard lock(mu_);
    old.swap(store_);
  }
  for (auto& [k, obj] : fresh) {
    auto it = old.find(k);
    bool same = it != old.end() && it->second["metadata"].value("resourceVersion", "") ==
                                       obj["metadata"].value("resourceVersion", "");
    if (!same) apply_event(it == old.end() ? "ADDED" : "MODIFIED", obj);
    else {
      std::lock_guard lock(mu_);
      store_[k] = obj;
    }
  }
  for (auto& [k, obj] : old)
    if (!fresh.count(k)) apply_event("DELETED", obj);
  rv_ = list["metadata"].value("resourceVersion", "");
  ++relists_;
  synced_ = true;
}

void Informer::run() {
  int backoff_ms = 100;
  json ctx = {{"resource", resource_.plural}, {"namespace", ns_}};
  while (!stop_) {
    try {
      if (rv_.empty()) relist();
      std::string q = resource_.collection(ns_) + "?watch=1&allowWatchBookmarks=true&resourceVersion=" +
                      url_encode(rv_) + "&timeoutSeconds=" + std::to_string(watch_timeout_s_);
      if (!selector_.empty()) q += "&labelSelector=" + url_encode(selector_);
      bool gone = false;
      client_.watch(q, [&](const json& ev) {
        std::string type = ev.value("type", "");
        const json& obj = ev.contains("object") ? ev["object"] : json::object();
        if (type == "ERROR") {
          int code = obj.value("code", 0);
          if (code == 410) gone = true;
          else throw ApiError(code, "watch error event: " + obj.value("message", ""));
          return false;
        }
        if (obj.contains("metadata")) rv_ = obj["metadata"].value("resourceVersion", rv_);
        if (type == "BOOKMARK") return true;  // only the resourceVersion moves
        apply_event(type, obj);
        return true;
      }, stop_);
      backoff_ms = 100;  // a watch that ran and closed normally is not a failure
      if (gone) {
        log_info("watch expired (410 Gone), relisting", ctx);
        rv_.clear();
      }
    } catch (const ApiError& e) {
      if (e.status == 410) {
        log_info("resourceVersion too old (410 Gone), relisting", ctx);
        rv_.clear();
        continue;
      }
      json f = ctx;
      f["error"] = e.what();
      f["retry_ms"] = backoff_ms;
      log_error("list/watch failed", f);
      for (int waited = 0; waited < backoff_ms && !stop_; waited += 50)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      backoff_ms = std::min(backoff_ms * 2, 30000);
    } catch (const std::exception& e) {
      json f = ctx;
      f["error"] = e.what();
      log_error("informer error", f);
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
      backoff_ms = std::min(backoff_ms * 2, 30000);
    }
  }
}

}  // namespace lorax::kube
