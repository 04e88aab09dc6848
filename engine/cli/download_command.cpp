// `lorax-engine download --model hf://ORG/NAME`: fetches the model into the cache
// (the same place `serve --model hf://...` looks) and prints its directory. The
// operator runs it as the engine pods' fetch-model init container, so a download
// has its own logs and kubelet retries, and the serve container starts on a
// complete cache (its startup probe no longer has to cover the download).
#include <cstdio>
#include <iostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/model_fetch.h"

namespace lorax::cli {
namespace {

int run_download(const std::vector<std::string>& argv) {
  Args args(argv, {"model", "model-cache-dir", "model-revision", "hub-endpoint"}, {});
  const std::string model = args.require("model");
  if (hf_repo_of(model).empty()) throw UsageError("--model must be hf://ORG/NAME");
  std::cout << resolve_model_dir(args) << '\n';
  return 0;
}

CommandRegistration reg("download", "fetch an hf:// model into the model cache", &run_download);

}  // namespace
}  // namespace lorax::cli
