#include "download/model_download.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <vector>

#include <nlohmann/json.hpp>

#include "download/http_get.h"
#include "download/sha256.h"

namespace lorax {

namespace fs = std::filesystem;

namespace {

const std::regex kNamePart("[A-Za-z0-9][A-Za-z0-9._-]{0,95}");

std::string trim_slash(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

// The files the engine reads: top-level config/tokenizer JSON, chat templates and
// safetensors weights (other formats and sub-folders such as original/ are skipped).
bool wanted(const std::string& f) {
  if (f.find('/') != std::string::npos || !std::regex_match(f, kNamePart)) return false;
  for (const char* ext : {".json", ".safetensors", ".jinja"})
    if (f.size() > std::strlen(ext) && f.compare(f.size() - std::strlen(ext), std::string::npos, ext) == 0) return true;
  return false;
}

std::string gb(uint64_t bytes) {
  char buf[32];
  if (bytes >= 1000000000) std::snprintf(buf, sizeof buf, "%.2f GB", static_cast<double>(bytes) / 1e9);
  else std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

class Fetcher {
 public:
  explicit Fetcher(const ModelDownloadConfig& c) : c_(c), base_(trim_slash(c.hub_endpoint)) {}

  std::vector<std::string> list_files() {
    const std::string url = base_ + "/api/models/" + c_.repo + "/revision/" + c_.revision;
    std::string body;
    HttpGetResult r = get(url, 0, [&](const uint8_t* d, size_t n) {
      if (body.size() + n > (64u << 20)) throw ModelDownloadError("the hub's file list is larger than 64 MB");
      body.append(reinterpret_cast<const char*>(d), n);
    });
    if (r.status == 401 || r.status == 403)
      throw ModelDownloadError(c_.repo + ": the hub answered " + std::to_string(r.status) +
                               " (a gated or private model needs a token: HF_TOKEN)");
    if (r.status == 404) throw ModelDownloadError(c_.repo + "@" + c_.revision + " not found on " + base_);
    if (r.status != 200) throw ModelDownloadError(c_.repo + ": GET " + url + " answered " + std::to_string(r.status));
    return hub_model_files(body, c_.repo);
  }

  // Downloads `file` into `part` (appending to what an earlier run left), then checks it.
  void fetch(const std::string& file, const fs::path& part, uint64_t& done_bytes) {
    const std::string url = base_ + "/" + c_.repo + "/resolve/" + c_.revision + "/" + file;
    for (int attempt = 1;; ++attempt) {
      std::error_code ec;
      uint64_t have = fs::exists(part, ec) ? fs::file_size(part, ec) : 0;
      try {
        fetch_once(file, url, part, have, done_bytes);
        return;
      } catch (const HttpGetError& e) {
        if (attempt >= c_.attempts)
          throw ModelDownloadError(c_.repo + ": downloading " + file + " failed " + std::to_string(attempt) +
                                   " times, last: " + e.what() + " (rerun to resume)");
        say(file + ": " + e.what() + "; resuming (attempt " + std::to_string(attempt + 1) + ")");
      }
    }
  }

  void say(const std::string& line) const {
    if (c_.log) c_.log("fetch " + c_.repo + ": " + line);
  }

 private:
  HttpGetResult get(const std::string& url, uint64_t from, const std::function<void(const uint8_t*, size_t)>& sink,
                    std::function<void(const HttpGetResult&)> on_response = nullptr) {
    HttpGetOptions o;
    o.bearer_token = c_.token;
    o.timeout_s = c_.timeout_s;
    o.range_start = from;
    o.on_response = std::move(on_response);
    return http_get(url, o, sink);
  }

  void fetch_once(const std::string& file, const std::string& url, const fs::path& part, uint64_t have,
                  uint64_t& done_bytes) {
    std::ofstream out;
    uint64_t written = 0, expected = 0;
    bool sized = false;
    auto last_log = std::chrono::steady_clock::now();
    HttpGetResult r = get(url, have, [&](const uint8_t* d, size_t n) {
      out.write(reinterpret_cast<const char*>(d), static_cast<std::streamsize>(n));
      if (!out) throw ModelDownloadError(c_.repo + ": writing " + file + " into the model cache failed");
      written += n;
      done_bytes += n;
      if (std::chrono::steady_clock::now() - last_log > std::chrono::seconds(10)) {
        last_log = std::chrono::steady_clock::now();
        say(file + " " + gb(written) + (sized ? " of " + gb(expected) : "") + ", " + gb(done_bytes) + " in all");
      }
    }, [&](const HttpGetResult& head) {
      // 206: the server resumes where the partial file ends; 200: it sends the whole file again.
      const bool resumed = head.status == 206 && have > 0;
      if (!resumed) have = 0;
      out.open(part, resumed ? std::ios::binary | std::ios::app : std::ios::binary | std::ios::trunc);
      if (!out) throw ModelDownloadError(c_.repo + ": cannot write " + file + " into the model cache");
      written = have;
      sized = head.content_length >= 0;
      expected = have + static_cast<uint64_t>(std::max<int64_t>(head.content_length, 0));
      say(file + (resumed ? " resuming at " + gb(have) : "") + (sized ? " (" + gb(expected) + ")" : ""));
    });
    if (r.status == 416 && have > 0) {  // nothing after `have`: the partial file is suspect, start over
      std::error_code ec;
      fs::remove(part, ec);
      throw HttpGetError("the hub refused to resume " + file + " (416)");
    }
    if (r.status == 404) throw ModelDownloadError(c_.repo + ": " + file + " is listed but GET answered 404");
    if (r.status != 200 && r.status != 206)
      throw ModelDownloadError(c_.repo + ": GET " + file + " answered " + std::to_string(r.status));
    out.close();
    if (!out) throw ModelDownloadError(c_.repo + ": writing " + file + " into the model cache failed");
    if (sized && written != expected)  // the connection ended early: resume from what arrived
      throw HttpGetError(file + " ended after " + std::to_string(written) + " of " + std::to_string(expected) + " bytes");
    if (std::regex_match(r.etag, std::regex("[0-9a-f]{64}"))) {
      const std::string got = sha256_file(part.string());
      if (got != r.etag) {
        std::error_code ec;
        fs::remove(part, ec);
        throw ModelDownloadError(c_.repo + ": " + file + " is corrupt: its sha256 is " + got + ", the hub says " +
                                 r.etag + " (removed; rerun to download it again)");
      }
    }
  }

  const ModelDownloadConfig& c_;
  std::string base_;
};

}  // namespace

std::vector<std::string> hub_model_files(const std::string& body, const std::string& repo) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("siblings") || !j["siblings"].is_array())
    throw ModelDownloadError(repo + ": the hub's model info has no `siblings` file list");
  std::vector<std::string> files;
  for (const auto& s : j["siblings"])
    if (s.is_object() && s.contains("rfilename") && s["rfilename"].is_string() && wanted(s["rfilename"]) &&
        std::find(files.begin(), files.end(), s["rfilename"]) == files.end())
      files.push_back(s["rfilename"]);
  auto has = [&](auto pred) { return std::any_of(files.begin(), files.end(), pred); };
  if (!has([](const std::string& f) { return f == "config.json"; }))
    throw ModelDownloadError(repo + ": the repository has no config.json");
  if (!has([](const std::string& f) { return f.size() > 12 && f.compare(f.size() - 12, 12, ".safetensors") == 0; }))
    throw ModelDownloadError(repo + ": the repository has no .safetensors weights");
  return files;
}

std::string hf_repo_of(const std::string& model) {
  if (model.rfind("hf://", 0) != 0) return "";
  const std::string repo = trim_slash(model.substr(5));
  const auto slash = repo.find('/');
  if (slash == std::string::npos || !std::regex_match(repo.substr(0, slash), kNamePart) ||
      !std::regex_match(repo.substr(slash + 1), kNamePart))
    throw ModelDownloadError("--model " + model + ": expected hf://ORG/NAME (letters, digits, . _ -)");
  return repo;
}

std::string ensure_model(const ModelDownloadConfig& c) {
  if (!std::regex_match(c.revision, kNamePart)) throw ModelDownloadError("model revision `" + c.revision + "` is not a plain name");
  if (c.cache_dir.empty()) throw ModelDownloadError("no model cache directory (--model-cache-dir)");
  const fs::path root = fs::path(c.cache_dir) / ("models--" + c.repo.substr(0, c.repo.find('/')) + "--" +
                                                  c.repo.substr(c.repo.find('/') + 1));
  const fs::path final_dir = root / c.revision;
  std::error_code ec;
  if (fs::is_directory(final_dir, ec)) return final_dir.string();  // complete: renamed into place only when so

  Fetcher f(c);
  const fs::path partial = root / (c.revision + ".partial");
  fs::create_directories(partial, ec);
  if (ec) throw ModelDownloadError("cannot create the model cache " + partial.string() + ": " + ec.message());
  const std::vector<std::string> files = f.list_files();
  f.say(std::to_string(files.size()) + " files from " + trim_slash(c.hub_endpoint) + " into " + final_dir.string());
  uint64_t done = 0;
  for (const std::string& file : files) {
    const fs::path dest = partial / file;
    if (fs::exists(dest, ec)) continue;  // finished in an earlier run
    const fs::path part = partial / (file + ".part");
    f.fetch(file, part, done);
    fs::rename(part, dest, ec);
    if (ec) throw ModelDownloadError("cannot move " + file + " into place: " + ec.message());
  }
  fs::rename(partial, final_dir, ec);
  if (ec && !fs::is_directory(final_dir)) throw ModelDownloadError("cannot move the model into place: " + ec.message());
  f.say("complete: " + final_dir.string());
  return final_dir.string();
}

}  // namespace lorax
