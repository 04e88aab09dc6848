// How an architecture's checkpoint tensors map onto the decoder's canonical
// weights. The decoder always sees fused projections: qkv = [q; k; v] rows and,
// for gated MLPs, up = [gate; up] rows, each [out, in] (y = x W^T + b).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "model/model_spec.h"

namespace lorax {

enum class PartLayout {
  Linear,   // stored [out, in] (torch nn.Linear)
  Conv1D,   // stored [in, out] (GPT-2's Conv1D): transposed on load
  NeoxQkv,  // GPT-NeoX query_key_value rows ordered (head, q|k|v, dim): regrouped to q|k|v
};

struct CanonicalWeight {
  std::string name;                   // e.g. "layers.0.qkv.weight"
  std::vector<std::string> parts;     // checkpoint tensor names, concatenated along rows
  std::vector<std::vector<int64_t>> part_shapes;  // expected canonical ([out, in] or [n]) shape of each part
  PartLayout layout = PartLayout::Linear;
  bool optional = false;              // e.g. a tied lm_head may be absent
};

std::vector<CanonicalWeight> checkpoint_layout(const ModelSpec& spec);

// Checkpoint tensors that carry no weights (attention mask buffers, cached
// rotary tables) and are ignored rather than reported as unexpected.
bool is_ignored_buffer(const std::string& name);

// Where a LoRA on checkpoint module `module` (e.g. "model.layers.3.self_attn.k_proj")
// lands in the decoder: layer, fused projection, column offset and the
// projection's input/output sizes. lm_head has layer -1.
enum class LoraProjection { Qkv, O, Up, Down, LmHead };
struct LoraTarget {
  int layer = -1;
  LoraProjection projection = LoraProjection::Qkv;
  int64_t col_offset = 0;
  int64_t in_features = 0;
  int64_t out_features = 0;
  bool neox_qkv = false;  // B's rows need NeoX regrouping
};
std::optional<LoraTarget> lora_target(const ModelSpec& spec, const std::string& module);

// GPT-NeoX fused QKV: row index in the regrouped [q; k; v] layout of the
// checkpoint row `row` (also used for adapters that target query_key_value).
int64_t neox_qkv_row(int64_t row, int num_heads, int head_dim);

}  // namespace lorax
