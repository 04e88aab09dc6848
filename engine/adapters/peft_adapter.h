// PEFT LoRA adapters (adapter_config.json + adapter_model.safetensors), validated
// against the base model and staged in host memory in the decoder's
// fused-projection layout, from where a device copy is one contiguous transfer.
#pragma once
#include <memory>
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

// An adapter staged in host memory (Backend::host_alloc) as its device copy will
// be laid out: every A [rank, in] and B [out, rank] in the backend's storage
// dtype, B's rows already regrouped where the decoder fuses differently (NeoX),
// each tensor 256-byte aligned.
struct StagedAdapter {
  struct Piece {
    int layer = -1;  // -1: lm_head
    Projection projection = Projection::Qkv;
    int64_t col_offset = 0, in = 0, out = 0;
    int rank = 0;
    float scale = 0.0f;
    size_t a_offset = 0, b_offset = 0;  // bytes into the buffer
  };
  std::string id;
  DType dtype = DType::F32;
  std::shared_ptr<void> host;
  size_t bytes = 0;
  int max_rank = 0;
  int num_layers = 0;
  std::vector<Piece> pieces;
  // Lays `piece` out after the others (its A and B offsets, each 256-byte aligned), before `host` is allocated.
  void append(Piece piece);
};

// Reads, validates and stages a PEFT folder; AdapterError with a one-line reason.
// The safetensors file is read with pread, one read per tensor when its dtype is
// the storage dtype. `max_bytes` (0: none) bounds the staged size; `warnings`
// receives one line per ignored key or module.
StagedAdapter stage_peft_adapter(const std::string& dir, const std::string& id, const ModelSpec& spec,
                                 Backend& backend, size_t max_bytes = 0, std::vector<std::string>* warnings = nullptr);

// The adapter's weights as views into `memory`: a device copy of `staged.host`
// (Backend::copy_to_device), or the host buffer itself on a host backend.
std::shared_ptr<AdapterWeights> adapter_weights_view(const StagedAdapter& staged, std::shared_ptr<void> memory);

// Stages, copies to the device and waits (the CLI and tests).
AdapterWeights load_peft_adapter(const std::string& dir, const std::string& id, const ModelSpec& spec,
                                 Backend& backend, std::vector<std::string>* warnings = nullptr);

}  // namespace lorax
