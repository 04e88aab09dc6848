// Fuzzes the hub's model info answer (GET /api/models/ORG/NAME/revision/REV), which
// decides which files `lorax-engine download` writes into the model cache: every name
// it returns must be one plain file name inside the cache folder (no '/', not "." or
// "..", no leading '.'; "a..b" is a plain name).
// ModelDownloadError is the expected answer to a bad body; any other exception
// escaping or a sanitizer report is a finding.
#include <cstdint>
#include <string>

#include "download/model_download.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  try {
    for (const std::string& f : lorax::hub_model_files(body, "org/model"))
      if (f.empty() || f.find('/') != std::string::npos || f[0] == '.' || f.find('\0') != std::string::npos)
        lorax_fuzz::broken("hub_model_files", "unsafe file name `" + f + "`");
  } catch (const lorax::ModelDownloadError&) {
  } catch (...) {
    lorax_fuzz::unexpected("hub_model_files");
  }
  return 0;
}
