// `--model hf://ORG/NAME`: the model's files fetched once from a Hugging Face-style
// hub into a local cache, so every later start (and the pod's main container after
// its fetch-model init container) finds them without a request.
//
// Layout: <cache_dir>/models--ORG--NAME/<revision>/ holds the files once complete;
// while downloading they sit in <...>/<revision>.partial/ (kept across runs, so an
// interrupted download resumes with HTTP Range requests) and the folder is renamed
// into place only when every file is there and checked (size, and SHA-256 where
// the hub gives one as the file's ETag), so a reader never sees half a model.
#pragma once
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace lorax {

struct ModelDownloadError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct ModelDownloadConfig {
  std::string repo;      // ORG/NAME
  std::string revision = "main";
  std::string hub_endpoint = "https://huggingface.co";
  std::string cache_dir;
  std::string token;     // bearer token for the hub (HF_TOKEN), to the endpoint only
  int timeout_s = 60;    // per request
  int attempts = 3;      // per file, resuming after a transport error
  std::function<void(const std::string& line)> log;  // progress, one line at a time
};

// "hf://ORG/NAME" -> "ORG/NAME"; "" when `model` is not an hf:// URI. Throws
// ModelDownloadError when it is one but malformed.
std::string hf_repo_of(const std::string& model);

// The files to fetch from the hub's model info JSON (GET /api/models/ORG/NAME/revision/REV):
// top-level *.json, *.safetensors and *.jinja names of `siblings`, each once. Throws
// ModelDownloadError when the answer is not such a list or lacks config.json or weights.
std::vector<std::string> hub_model_files(const std::string& body, const std::string& repo);

// The directory of the complete model, downloading what is missing. Throws
// ModelDownloadError with a one-line reason.
std::string ensure_model(const ModelDownloadConfig& config);

}  // namespace lorax
