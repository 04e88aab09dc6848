// Fuzzes the PEFT adapter_config.json reader through its public entry point,
// stage_peft_adapter: the input is the adapter_config.json of a folder whose
// adapter_model.safetensors is a real fixture (tests/fixtures/adapters/llama/
// all-r4-patterns, on the llama fixture model), so accepted configs go on to
// rank/alpha pattern matching (user-supplied regexes) and staging on the CPU
// backend. AdapterError is the expected answer to a bad config; any other
// exception escaping or a sanitizer report is a finding.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "adapters/peft_adapter.h"
#include "fuzz_util.h"
#include "model/model_spec.h"
#include "runtime/backend.h"
#include "runtime/tensor.h"

namespace {

struct Setup {
  lorax::ModelSpec spec;
  std::unique_ptr<lorax::Backend> backend;
  std::string dir;
};

const Setup& setup() {
  static const Setup s = [] {
    Setup s;
    s.spec = lorax::load_model_spec(LORAX_SOURCE_DIR "/tests/fixtures/models/llama");
    s.backend = lorax::make_cpu_backend(1);
    s.dir = lorax_fuzz::scratch_dir() + "/adapter";
    std::filesystem::create_directories(s.dir);
    std::filesystem::copy_file(LORAX_SOURCE_DIR "/tests/fixtures/adapters/llama/all-r4-patterns/adapter_model.safetensors",
                               s.dir + "/adapter_model.safetensors", std::filesystem::copy_options::overwrite_existing);
    return s;
  }();
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Setup& s = setup();
  lorax_fuzz::write_scratch("adapter/adapter_config.json", data, size);
  std::vector<std::string> warnings;
  try {
    const lorax::StagedAdapter staged =
        lorax::stage_peft_adapter(s.dir, "fuzz", s.spec, *s.backend, /*max_bytes=*/64 << 20, &warnings);
    const size_t elem = lorax::dtype_size(staged.dtype);
    for (const auto& p : staged.pieces)
      if (p.a_offset + static_cast<size_t>(p.rank) * p.in * elem > staged.bytes ||
          p.b_offset + static_cast<size_t>(p.out) * p.rank * elem > staged.bytes)
        lorax_fuzz::broken("stage_peft_adapter", "a piece lies outside the staged buffer");
  } catch (const lorax::AdapterError&) {
  } catch (...) {
    lorax_fuzz::unexpected("stage_peft_adapter");
  }
  return 0;
}
