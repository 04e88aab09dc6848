// Per-request adapter merging (LoRAX `merged_adapters`): several PEFT adapters
// of one rank combined into one adapter with the math of peft's
// LoraModel.add_weighted_adapter, so a merge here equals the same merge there.
// Per module (a staged piece: layer, projection, column offset), with each
// source's s_i = weight_i * scaling_i:
//   A = MERGE_i(A_i, sign(s_i) sqrt|s_i|),  B = MERGE_i(B_i, sqrt|s_i|),  scaling 1
// where MERGE over the sources that have the module is
//   linear:      sum_i w_i T_i
//   ties:        each T_i keeps its int(density * numel) largest magnitudes; per
//                element the majority sign of the pruned tensors ("total": of
//                their sum, "frequency": of their signs' sum, ties positive);
//                the mean of w_i T_i over the sources that agree with it
//   dare_linear: each T_i keeps every element with probability `density`,
//                divided by density; then linear
//   dare_ties:   DARE's pruning, then ties' sign election and mean
// A and B are merged separately (peft's rule: the product is not the weighted
// sum of the products). DARE's draws come from a generator seeded by the merge's
// own key, so a merge is reproducible; they cannot equal torch's bernoulli draws.
// peft carries a first rsLoRA source's use_rslora into the merged config
// (scaling sqrt(r)); here the merged scaling is always 1, the value the merge
// rule is written for.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "adapters/adapter_source.h"
#include "adapters/peft_adapter.h"

namespace lorax {

enum class MergeStrategy { Linear, Ties, DareLinear, DareTies };
enum class MajoritySign { Total, Frequency };

struct MergeSpec {
  std::vector<AdapterRequest> adapters;  // the sources, in order
  std::vector<double> weights;           // one per source
  MergeStrategy strategy = MergeStrategy::Linear;
  double density = 1.0;                  // ties and DARE: the fraction kept, in (0, 1]
  MajoritySign majority_sign = MajoritySign::Total;

  // Canonical text of everything that determines the result (sources with
  // their source and sha256, weights, strategy...), and the merged adapter's id
  // derived from it: one merge is built once and then served like any adapter.
  std::string key() const;
  std::string id() const;
};

// Throws AdapterError naming the problem (unknown strategy, weights that do not
// match the ids, density out of range...).
MergeStrategy merge_strategy_named(const std::string& name);
MajoritySign majority_sign_named(const std::string& name);
void validate_merge(const MergeSpec& spec);

// The merged adapter, staged like a loaded one. The sources must target the same
// base model in the same staged layout; every module's rank must agree.
StagedAdapter merge_staged_adapters(const std::vector<std::shared_ptr<const StagedAdapter>>& sources,
                                    const MergeSpec& spec, const std::string& id, Backend& backend);

}  // namespace lorax
