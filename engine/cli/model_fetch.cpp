#include "cli/model_fetch.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>

namespace lorax::cli {

namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

std::string default_cache_dir() {
  if (const char* hf = std::getenv("HF_HOME"); hf && *hf) return (std::filesystem::path(hf) / "lorax").string();
  if (const char* home = std::getenv("HOME"); home && *home)
    return (std::filesystem::path(home) / ".cache" / "lorax").string();
  return (std::filesystem::temp_directory_path() / "lorax-models").string();
}

}  // namespace

std::string resolve_model_dir(const Args& args) {
  const std::string model = args.require("model");
  const std::string repo = hf_repo_of(model);
  if (repo.empty()) {
    for (const char* f : {"model-revision", "model-cache-dir"})
      if (args.has(f)) throw UsageError(std::string("--") + f + " only applies to an hf://ORG/NAME --model");
    return model;
  }
  ModelDownloadConfig c;
  c.repo = repo;
  c.revision = args.get_or("model-revision", c.revision);
  c.hub_endpoint = args.get_or("hub-endpoint", c.hub_endpoint);
  c.cache_dir = args.get_or("model-cache-dir", default_cache_dir());
  c.token = env_or("HF_TOKEN", env_or("HUGGING_FACE_HUB_TOKEN", ""));
  c.log = [](const std::string& line) {
    std::fprintf(stderr, "lorax-engine: %s\n", line.c_str());
    std::fflush(stderr);
  };
  return ensure_model(c);
}

}  // namespace lorax::cli
