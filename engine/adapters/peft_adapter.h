// PEFT LoRA adapters (adapter_config.json + adapter_model.safetensors) loaded
// into the decoder's fused-projection layout, validated against the base model.
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

#include "adapters/adapter_batch.h"
#include "model/model_spec.h"

namespace lorax {

// An adapter that cannot be used with this base model (HTTP 4xx at the server).
struct AdapterError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// `warnings` receives one line per ignored key or module.
AdapterWeights load_peft_adapter(const std::string& dir, const std::string& id, const ModelSpec& spec,
                                 Backend& backend, std::vector<std::string>* warnings = nullptr);

}  // namespace lorax
