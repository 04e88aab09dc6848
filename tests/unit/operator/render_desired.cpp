// operator_render LDEP.json [ADAPTER.json...]: the desired objects as one JSON array.
#include <fstream>
#include <iostream>

#include "controllers/desired.h"
#include "controllers/status.h"

using lorax::op::json;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: operator_render LDEP.json [ADAPTER.json...]\n";
    return 2;
  }
  try {
    json ldep = json::parse(std::ifstream(argv[1]));
    std::vector<json> adapters;
    for (int i = 2; i < argc; ++i) adapters.push_back(json::parse(std::ifstream(argv[i])));
    lorax::op::Defaults d;
    lorax::op::AdapterTokens tokens;  // as if every tokenSecretRef Secret exists
    for (const auto& a : adapters)
      if (a["spec"].contains("tokenSecretRef")) tokens[a["metadata"]["name"]] = "dG9rZW4=";
    json out = json::array({lorax::op::desired_deployment(ldep, d), lorax::op::desired_service(ldep),
                            lorax::op::desired_adapter_configmap(ldep, adapters, tokens),
                            lorax::op::desired_adapter_token_secret(ldep, tokens), lorax::op::desired_pdb(ldep),
                            lorax::op::desired_service_monitor(ldep)});
    json hpa = lorax::op::desired_hpa(ldep);
    if (!hpa.is_null()) out.push_back(hpa);
    for (auto& o : out) o = lorax::op::with_applied_hash(o);
    json ld = ldep;
    ld["status"] = lorax::op::ldep_status(ldep, nullptr, adapters, "", lorax::op::now_rfc3339());
    out.push_back(ld);
    for (auto& a : adapters) {
      json ad = a;
      ad["status"] = lorax::op::adapter_status(a, "", "", {{"pod-a", {"Loaded", ""}}, {"pod-b", {"Failed", "boom"}}},
                                               lorax::op::now_rfc3339());
      out.push_back(ad);
    }
    std::cout << out.dump(2) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
