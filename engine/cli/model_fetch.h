// `--model`: a local directory, or hf://ORG/NAME fetched into the model cache first
// (--model-cache-dir, default $HF_HOME/lorax or ~/.cache/lorax; --model-revision;
// --hub-endpoint; the token from HF_TOKEN).
#pragma once
#include <string>

#include "cli/args.h"
#include "download/model_download.h"

namespace lorax::cli {

// The local directory `--model` names, downloading an hf:// model when it is not cached yet.
std::string resolve_model_dir(const Args& args);

}  // namespace lorax::cli
