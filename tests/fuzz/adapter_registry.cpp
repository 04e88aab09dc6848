// Fuzzes the engine's --adapter-registry file (the operator's adapter ConfigMap, also
// editable by anyone who can write ConfigMaps in the namespace): the input is the
// file; a registry that loads must answer lookups of every id it lists with that id.
// AdapterError is the expected answer to a bad file; any other exception escaping or a
// sanitizer report is a finding.
#include <cstdint>
#include <string>

#include "adapters/adapter_registry.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = lorax_fuzz::write_scratch("adapters.json", data, size);
  try {
    lorax::AdapterRegistry registry(path);
    for (const std::string& id : registry.ids()) {
      std::optional<lorax::AdapterRequest> r;
      try {
        r = registry.lookup(id);
      } catch (const lorax::AdapterError&) {  // an unreadable token_file
        continue;
      }
      if (!r || r->id != id || !r->registered) lorax_fuzz::broken("AdapterRegistry", "a listed id does not resolve");
    }
  } catch (const lorax::AdapterError&) {
  } catch (...) {
    lorax_fuzz::unexpected("AdapterRegistry");
  }
  return 0;
}
