#include "adapters/adapter_source.h"

#include "adapters/url_policy.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include <cpprest/http_client.h>
#include <cpprest/rawptrstream.h>
#include <openssl/evp.h>
#include <unistd.h>

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

std::string hex(const unsigned char* d, unsigned n) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < n; ++i) {
    s += digits[d[i] >> 4];
    s += digits[d[i] & 15];
  }
  return s;
}

std::string sha256_string(const std::string& text) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  EVP_Digest(text.data(), text.size(), d, &n, EVP_sha256(), nullptr);
  return hex(d, n);
}

// The result of a cpprestsdk task; when the server stops meanwhile, the request is
// cancelled (the task then throws) instead of being waited for until its timeout.
template <typename T>
T await(pplx::task<T> task, pplx::cancellation_token_source& cancel, const AdapterSourceConfig& cfg) {
  while (!task.is_done()) {
    if (cfg.cancelled && cfg.cancelled->load()) cancel.cancel();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return task.get();
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

// The response to GET `url`, following at most four redirects by hand: each hop is
// checked against the policy, a hop to another host only when an allow entry names
// that host, and the bearer token goes to the first host only.
web::http::http_response get_checked(const std::string& id, const std::string& url, const AdapterRequest& req,
                                     const AdapterSourceConfig& cfg, pplx::cancellation_token_source& cancel) {
  using namespace web::http;
  const UrlPolicy policy = url_policy(cfg);
  const UrlTarget origin = parse_url_target(url);
  std::string current = url;
  for (int hop = 0;; ++hop) {
    check_url_allowed(current, policy, id);
    const UrlTarget t = parse_url_target(current);
    const bool same_origin = t.scheme == origin.scheme && t.host == origin.host && t.port == origin.port;
    client::http_client_config hc;
    hc.set_timeout(std::chrono::seconds(cfg.timeout_s));
    hc.set_max_redirects(0);
    client::http_client client(current, hc);
    http_request get(methods::GET);
    if (!req.api_token.empty() && same_origin) get.headers().add("Authorization", "Bearer " + req.api_token);
    http_response resp = await(client.request(get, cancel.get_token()), cancel, cfg);
    const int code = resp.status_code();
    if (code < 300 || code >= 400 || !resp.headers().has("Location")) return resp;
    if (hop == 4) throw AdapterError("adapter `" + id + "`: more than 4 redirects");
    const std::string next = web::uri(current).resolve_uri(resp.headers()["Location"]);
    const UrlTarget n = parse_url_target(next);
    const bool named = std::any_of(policy.allow.begin(), policy.allow.end(),
                                   [&](const std::string& e) { return allow_entry_names(e, n); });
    if (n.host != origin.host && !named)
      throw AdapterForbidden("adapter `" + id + "`: a redirect from " + origin.host + " to another host (" + n.host +
                             ") is refused; allow it with --adapter-url-allow");
    current = next;
  }
}

// GET `url` into `dest`, counting into `total` against the limit.
void download(const std::string& id, const std::string& url, const fs::path& dest, const AdapterRequest& req,
              const AdapterSourceConfig& cfg, uint64_t& total) {
  using namespace web::http;
  // Error messages name the URL without its query (signatures, tokens) and never a local path.
  const std::string shown = url.substr(0, url.find('?'));
  try {
    pplx::cancellation_token_source cancel;
    http_response resp = get_checked(id, url, req, cfg, cancel);
    if (resp.status_code() == status_codes::NotFound)
      throw AdapterNotFound("adapter `" + id + "` not found: GET " + shown + " answered 404");
    if (resp.status_code() != status_codes::OK)
      throw AdapterError("adapter `" + id + "`: GET " + shown + " answered " + std::to_string(resp.status_code()));
    auto too_big = [&] {
      return AdapterError("adapter `" + id + "`: download exceeds the limit of " + std::to_string(cfg.max_bytes) +
                          " bytes (--adapter-max-bytes)");
    };
    if (resp.headers().content_length() > cfg.max_bytes - std::min(total, cfg.max_bytes)) {
      cancel.cancel();
      throw too_big();
    }
    std::ofstream out(dest, std::ios::binary);
    if (!out) throw AdapterError("adapter `" + id + "`: cannot write to the adapter cache");
    auto body = resp.body();
    std::vector<uint8_t> chunk(1 << 16);
    for (;;) {
      concurrency::streams::rawptr_buffer<uint8_t> buf(chunk.data(), chunk.size(), std::ios::out);
      const size_t n = await(body.read(buf, chunk.size()), cancel, cfg);
      if (n == 0) break;
      total += n;
      if (total > cfg.max_bytes) {
        cancel.cancel();
        throw too_big();
      }
      out.write(reinterpret_cast<const char*>(chunk.data()), static_cast<std::streamsize>(n));
    }
    out.close();
    if (!out) throw AdapterError("adapter `" + id + "`: writing to the adapter cache failed");
  } catch (const AdapterError&) {
    throw;
  } catch (const std::exception& e) {
    throw AdapterError("adapter `" + id + "`: downloading " + shown + " failed: " + e.what());
  }
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
  const fs::path final_dir = cache / sha256_string(base + query + "\n" + sha + "\n" + req.api_token).substr(0, 32);
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
      const std::string got = sha256_file((tmp / kFiles[1]).string());
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

std::string sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw AdapterError("cannot read " + path);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(in.gcount()));
  }
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  EVP_DigestFinal_ex(ctx, d, &n);
  EVP_MD_CTX_free(ctx);
  return hex(d, n);
}

std::string resolve_adapter_dir(const AdapterRequest& req, const AdapterSourceConfig& cfg) {
  const std::string& id = req.id;
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
