#include "adapters/adapter_source.h"

#include "adapters/url_policy.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include <unistd.h>

#include "download/http_get.h"
#include "download/sha256.h"

namespace lorax {

namespace fs = std::filesystem;

namespace {

const char* const kFiles[] = {"adapter_config.json", "adapter_model.safetensors"};

bool has_files(const fs::path& dir) {
  for (const char* f : kFiles)
    if (!fs::is_regular_file(dir / f)) return false;
  return true;
}

// `p` (already canonical) lies inside `root` (canonicalised here).
bool inside(const fs::path& p, const std::string& root) {
  if (root.empty()) return false;
  std::error_code ec;
  const fs::path r = fs::weakly_canonical(fs::absolute(root), ec);
  if (ec) return false;
  auto [ri, pi] = std::mismatch(r.begin(), r.end(), p.begin(), p.end());
  return ri == r.end() || (std::next(ri) == r.end() && ri->empty());  // trailing "/" on the root
}

std::string local_dir(const std::string& id, const fs::path& path, const AdapterSourceConfig& cfg) {
  std::error_code ec;
  // weakly_canonical resolves `..` and every symlink of the existing prefix.
  const fs::path canon = fs::weakly_canonical(fs::absolute(path), ec);
  if (ec) throw AdapterNotFound("adapter `" + id + "`: " + ec.message());
  bool allowed = inside(canon, cfg.adapter_dir);
  for (const std::string& r : cfg.roots) allowed = allowed || inside(canon, r);
  if (!allowed)
    throw AdapterForbidden("adapter `" + id + "` is outside the allowed adapter roots (--adapter-dir, --adapter-root)");
  if (!fs::is_directory(canon)) throw AdapterNotFound("adapter `" + id + "` not found");
  // The two files must not be links leading out of the roots either.
  for (const char* f : kFiles) {
    const fs::path file = fs::weakly_canonical(canon / f, ec);
    bool inside_roots = !ec && inside(file, cfg.adapter_dir);
    for (const std::string& r : cfg.roots) inside_roots = inside_roots || (!ec && inside(file, r));
    if (!inside_roots && fs::exists(canon / f, ec))
      throw AdapterForbidden("adapter `" + id + "`: " + f + " links outside the allowed adapter roots");
  }
  return canon.string();
}

// The hosts a download may reach: the allow-list plus the configured endpoints.
UrlPolicy url_policy(const AdapterSourceConfig& cfg) {
  UrlPolicy p{cfg.url_allow};
  for (const std::string& endpoint : {cfg.hub_endpoint, cfg.s3_endpoint}) try {
      const UrlTarget t = parse_url_target(endpoint);
      p.allow.push_back((t.host.find(':') != std::string::npos ? "[" + t.host + "]" : t.host) + ":" +
                        std::to_string(t.port));
    } catch (const AdapterError&) {
    }
  return p;
}

// GET `url` into `dest`, counting into `total` against the limit. Every hop is
// checked against the URL policy; a redirect to another host only when an allow
// entry names that host (http_get sends the bearer token to the first host only).
void download(const std::string& id, const std::string& url, const fs::path& dest, const AdapterRequest& req,
              const AdapterSourceConfig& cfg, uint64_t& total) {
  // Error messages name the URL without its query (signatures, tokens) and never a local path.
  const std::string shown = url.substr(0, url.find('?'));
  const UrlPolicy policy = url_policy(cfg);
  const UrlTarget origin = parse_url_target(url);
  HttpGetOptions o;
  o.bearer_token = req.api_token;
  o.timeout_s = cfg.timeout_s;
  o.cancelled = cfg.cancelled;
  o.check_url = [&](const std::string& hop, bool redirected) {
    if (redirected) {
      const UrlTarget n = parse_url_target(hop);
      const bool named = std::any_of(policy.allow.begin(), policy.allow.end(),
                                     [&](const std::string& e) { return allow_entry_names(e, n); });
      if (n.host != origin.host && !named)
        throw AdapterForbidden("adapter `" + id + "`: a redirect from " + origin.host + " to another host (" + n.host +
                               ") is refused; allow it with --adapter-url-allow");
    }
    check_url_allowed(hop, policy, id);
  };
  auto too_big = [&] {
    return AdapterError("adapter `" + id + "`: download exceeds the limit of " + std::to_string(cfg.max_bytes) +
                        " bytes (--adapter-max-bytes)");
  };
  std::ofstream out(dest, std::ios::binary);
  if (!out) throw AdapterError("adapter `" + id + "`: cannot write to the adapter cache");
  o.on_response = [&](const HttpGetResult& head) {  // refused before reading a byte when the length says so
    if (head.content_length > 0 &&
        static_cast<uint64_t>(head.content_length) > cfg.max_bytes - std::min(total, cfg.max_bytes))
      throw too_big();
  };
  HttpGetResult r;
  try {
    r = http_get(url, o, [&](const uint8_t* data, size_t n) {
      total += n;
      if (total > cfg.max_bytes) throw too_big();
      out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(n));
    });
  } catch (const HttpGetError& e) {
    throw AdapterError("adapter `" + id + "`: downloading " + shown + " failed: " + e.what());
  }
  if (r.status == 404) throw AdapterNotFound("adapter `" + id + "` not found: GET " + shown + " answered 404");
  if (r.status != 200) throw AdapterError("adapter `" + id + "`: GET " + shown + " answered " + std::to_string(r.status));
  out.close();
  if (!out) throw AdapterError("adapter `" + id + "`: writing to the adapter cache failed");
}

// `base` is an http(s) folder URL (ending in "/"); the two files are fetched
// into a temporary folder that is renamed into the cache only when complete.
std::string fetch(const std::string& id, std::string base, std::string sha, const AdapterRequest& req,
                  const AdapterSourceConfig& cfg) {
  if (auto h = base.find("#sha256="); h != std::string::npos) {
    if (sha.empty()) sha = base.substr(h + 8);
    base.resize(h);
  } else if (auto f = base.find('#'); f != std::string::npos) {
    base.resize(f);
  }
  for (char& c : sha) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!sha.empty() && !std::regex_match(sha, std::regex("[0-9a-f]{64}")))
    throw AdapterError("adapter `" + id + "`: sha256 must be 64 hex digits");
  std::string query;
  if (auto q = base.find('?'); q != std::string::npos) {
    query = base.substr(q);
    base.resize(q);
  }
  if (base.empty() || base.back() != '/') base += '/';
  if (cfg.cache_dir.empty()) throw AdapterError("adapter `" + id + "`: no --adapter-cache-dir for downloads");
  const fs::path cache(cfg.cache_dir);
  // The token is part of the key: a download made with one client's credentials is
  // not handed to a client without them.
  const fs::path final_dir = cache / sha256_hex(base + query + "\n" + sha + "\n" + req.api_token).substr(0, 32);
  if (has_files(final_dir)) return final_dir.string();  // cache hit: no request at all

  static std::atomic<uint64_t> counter{0};
  std::error_code ec;
  fs::create_directories(cache, ec);
  if (ec) throw AdapterError("adapter `" + id + "`: cannot create the adapter cache: " + ec.message());
  const fs::path tmp = cache / (".partial-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  fs::create_directories(tmp, ec);
  try {
    uint64_t total = 0;
    for (const char* f : kFiles) download(id, base + f + query, tmp / f, req, cfg, total);
    if (!sha.empty()) {
      std::string got;
      try {
        got = sha256_file((tmp / kFiles[1]).string());
      } catch (const std::runtime_error&) {
        throw AdapterError("adapter `" + id + "`: cannot read the downloaded adapter_model.safetensors");
      }
      if (got != sha)
        throw AdapterError("adapter `" + id + "`: sha256 of adapter_model.safetensors is " + got + ", expected " + sha);
    }
    fs::rename(tmp, final_dir, ec);  // atomic; a concurrent identical download may have won
    if (ec && !has_files(final_dir)) throw AdapterError("adapter `" + id + "`: cannot store in cache: " + ec.message());
    if (ec) fs::remove_all(tmp, ec);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  return final_dir.string();
}

bool safe_components(const std::string& s) {
  static const std::regex part("[A-Za-z0-9._-]+");
  size_t start = 0;
  for (;;) {
    size_t slash = s.find('/', start);
    std::string c = s.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (c.empty() || c == "." || c == ".." || !std::regex_match(c, part)) return false;
    if (slash == std::string::npos) return true;
    start = slash + 1;
  }
}

std::string trim_slash(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

}  // namespace

void check_adapter_id(const std::string& id) {
  if (id.empty()) throw AdapterError("empty adapter id");
  if (id.size() > kMaxAdapterIdLength)
    throw AdapterError("adapter id longer than " + std::to_string(kMaxAdapterIdLength) + " characters");
  for (char c : id)
    if (c < 0x21 || c > 0x7e)
      throw AdapterError("adapter ids are printable ASCII without spaces or control characters");
}

int adapter_error_status(const AdapterError& e) {
  if (dynamic_cast<const AdapterNotFound*>(&e)) return 404;
  if (dynamic_cast<const AdapterForbidden*>(&e)) return 403;
  return 422;
}

std::string resolve_adapter_dir(const AdapterRequest& req, const AdapterSourceConfig& cfg) {
  const std::string& id = req.where();
  check_adapter_id(id);
  const bool is_url = id.rfind("http://", 0) == 0 || id.rfind("https://", 0) == 0;
  if (req.source == "url" || (req.source.empty() && is_url)) {
    if (!is_url) throw AdapterError("adapter `" + id + "`: a url source must start with http:// or https://");
    return fetch(id, id, req.sha256, req, cfg);
  }
  if (req.source == "hub") {
    if (!safe_components(id) || std::count(id.begin(), id.end(), '/') != 1)
      throw AdapterError("adapter `" + id + "`: a hub adapter is named ORG/NAME");
    return fetch(id, trim_slash(cfg.hub_endpoint) + "/" + id + "/resolve/main/", req.sha256, req, cfg);
  }
  if (req.source == "s3") {
    std::string key = id.rfind("s3://", 0) == 0 ? id.substr(5) : id;
    key = trim_slash(key);
    if (!safe_components(key) || key.find('/') == std::string::npos)
      throw AdapterError("adapter `" + id + "`: an s3 adapter is named BUCKET/KEY (or s3://BUCKET/KEY)");
    return fetch(id, trim_slash(cfg.s3_endpoint) + "/" + key + "/", req.sha256, req, cfg);
  }
  if (req.source == "local") {
    // Relative to what? The process's working directory is no answer a client should rely on.
    if (!fs::path(id).is_absolute()) throw AdapterError("adapter `" + id + "`: a local adapter is an absolute path");
    return local_dir(id, fs::path(id), cfg);
  }
  if (!req.source.empty())
    throw AdapterError("adapter `" + id + "`: adapter_source must be one of local, hub, s3, url (got `" + req.source + "`)");
  // Default: a name under --adapter-dir.
  if (cfg.adapter_dir.empty())
    throw AdapterNotFound("adapter `" + id + "` not found (no --adapter-dir; use adapter_source local/url/hub/s3)");
  if (fs::path(id).is_absolute())
    throw AdapterForbidden("adapter `" + id + "`: a name under --adapter-dir must be relative");
  return local_dir(id, fs::path(cfg.adapter_dir) / id, cfg);
}

}  // namespace lorax
