#include "adapters/adapter_source.h"

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
    throw AdapterForbidden("adapter `" + id + "`: path " + canon.string() +
                           " is outside the allowed adapter roots (--adapter-dir, --adapter-root)");
  if (!fs::is_directory(canon)) throw AdapterNotFound("adapter `" + id + "` not found (" + canon.string() + ")");
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

// GET `url` into `dest`, counting into `total` against the limit.
void download(const std::string& id, const std::string& url, const fs::path& dest, const AdapterRequest& req,
              const AdapterSourceConfig& cfg, uint64_t& total) {
  using namespace web::http;
  try {
    client::http_client_config hc;
    hc.set_timeout(std::chrono::seconds(cfg.timeout_s));
    client::http_client client(url, hc);
    http_request get(methods::GET);
    if (!req.api_token.empty()) get.headers().add("Authorization", "Bearer " + req.api_token);
    pplx::cancellation_token_source cancel;
    http_response resp = await(client.request(get, cancel.get_token()), cancel, cfg);
    if (resp.status_code() == status_codes::NotFound)
      throw AdapterNotFound("adapter `" + id + "` not found: GET " + url + " answered 404");
    if (resp.status_code() != status_codes::OK)
      throw AdapterError("adapter `" + id + "`: GET " + url + " answered " + std::to_string(resp.status_code()));
    auto too_big = [&] {
      return AdapterError("adapter `" + id + "`: download exceeds the limit of " + std::to_string(cfg.max_bytes) +
                          " bytes (--adapter-max-bytes)");
    };
    if (resp.headers().content_length() > cfg.max_bytes - std::min(total, cfg.max_bytes)) {
      cancel.cancel();
      throw too_big();
    }
    std::ofstream out(dest, std::ios::binary);
    if (!out) throw AdapterError("adapter `" + id + "`: cannot write " + dest.string());
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
    if (!out) throw AdapterError("adapter `" + id + "`: writing " + dest.string() + " failed");
  } catch (const AdapterError&) {
    throw;
  } catch (const std::exception& e) {
    throw AdapterError("adapter `" + id + "`: downloading " + url + " failed: " + e.what());
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
  const fs::path final_dir = cache / sha256_string(base + query + "\n" + sha).substr(0, 32);
  if (has_files(final_dir)) return final_dir.string();  // cache hit: no request at all

  static std::atomic<uint64_t> counter{0};
  std::error_code ec;
  fs::create_directories(cache, ec);
  if (ec) throw AdapterError("adapter `" + id + "`: cannot create " + cache.string() + ": " + ec.message());
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
  if (id.empty()) throw AdapterError("empty adapter id");
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
  if (req.source == "local") return local_dir(id, fs::path(id), cfg);
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
