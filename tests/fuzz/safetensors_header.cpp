// Fuzzes the safetensors reader on whole files (8-byte header length, JSON
// header, tensor bytes): SafetensorsFile without mapping the data (how adapters
// are read) and with it (how models are read), then read_f32 of every tensor
// of the mapped file. ModelError is the expected answer to a corrupt file; any
// other exception escaping, a sanitizer report, or a tensor whose byte range
// leaves the file is a finding.
#include <algorithm>
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "model/model_spec.h"
#include "model/safetensors.h"

namespace {

size_t element_size(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64") return 8;
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16") return 2;
  return 1;  // I8, U8, BOOL, F8_*: the reader rejects every other name
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = lorax_fuzz::write_scratch("model.safetensors", data, size);
  try {
    lorax::SafetensorsFile f(path, /*map_data=*/false);
    for (const auto& [name, t] : f.tensors()) {
      if (t.file_offset > size || t.nbytes > size - t.file_offset)
        lorax_fuzz::broken("SafetensorsFile", "tensor '" + name + "' lies outside the file");
      // The byte size is exactly elements x element size, computed without wrapping.
      const unsigned __int128 cap = static_cast<unsigned __int128>(1) << 64;  // more than any file holds
      unsigned __int128 bytes = element_size(t.dtype);
      for (int64_t d : t.shape) bytes = std::min(bytes * static_cast<uint64_t>(d), cap);
      if (bytes != t.nbytes) lorax_fuzz::broken("SafetensorsFile", "tensor '" + name + "': shape and byte size disagree");
    }
  } catch (const lorax::ModelError&) {
  } catch (...) {
    lorax_fuzz::unexpected("SafetensorsFile(map_data=false)");
  }
  try {
    lorax::Checkpoint ckpt = lorax::Checkpoint::open_file(path, /*map_data=*/true);
    for (const std::string& name : ckpt.names()) {
      try {
        const std::vector<float> v = ckpt.read_f32(name);
        (void)v;
      } catch (const lorax::ModelError&) {  // not a float dtype
      }
    }
  } catch (const lorax::ModelError&) {
  } catch (...) {
    lorax_fuzz::unexpected("SafetensorsFile(map_data=true)");
  }
  return 0;
}
