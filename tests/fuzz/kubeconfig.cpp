// Fuzzes the operator's kubeconfig reader (kube::load_kubeconfig, yaml-cpp
// underneath) on the file's text. Its contract is std::runtime_error with a
// one-line reason for a bad file (yaml-cpp's exceptions derive from it); any
// other exception escaping or a sanitizer report is a finding. Only the
// current context's cluster and user are read; files it names are not opened.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "fuzz_util.h"
#include "kube/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = lorax_fuzz::write_scratch("kubeconfig", data, size);
  try {
    const lorax::kube::ClusterConfig c = lorax::kube::load_kubeconfig(path);
    if (c.token_file.empty()) (void)c.bearer();
  } catch (const std::runtime_error&) {
  } catch (...) {
    lorax_fuzz::unexpected("load_kubeconfig");
  }
  return 0;
}
