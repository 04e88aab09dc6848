// Checkpoint -> canonical weights: reads every part named by the architecture's
// layout, checks shapes and dtypes, applies the layout transform (transpose,
// NeoX regrouping), concatenates fused projections and uploads them.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>

#include "model/checkpoint_layout.h"
#include "model/model.h"
#include "model/safetensors.h"

namespace lorax {
namespace {

using Shape = std::vector<int64_t>;

// The checkpoint name of `name`, allowing GPT-2's prefix-less original layout
// and a bare decoder's ("layers.0...", as sentence-transformers saves AutoModel).
std::string resolve(const Checkpoint& ckpt, const std::string& name) {
  if (ckpt.has(name)) return name;
  for (const std::string prefix : {"transformer.", "model."})
    if (name.rfind(prefix, 0) == 0 && ckpt.has(name.substr(prefix.size()))) return name.substr(prefix.size());
  return "";
}

std::vector<float> read_part(const Checkpoint& ckpt, const std::string& name, const Shape& expected, PartLayout layout,
                             const ModelSpec& spec) {
  const TensorInfo& info = ckpt.info(name);
  Shape stored = expected;
  if (layout == PartLayout::Conv1D && expected.size() == 2) stored = {expected[1], expected[0]};
  if (info.shape != stored)
    throw ModelError(info.file + ": tensor '" + name + "' has shape " + shape_string(info.shape) + ", expected " +
                     shape_string(stored));
  std::vector<float> data = ckpt.read_f32(name);
  if (layout == PartLayout::Conv1D && expected.size() == 2) {
    std::vector<float> t(data.size());
    const int64_t in = stored[0], out = stored[1];
    for (int64_t i = 0; i < in; ++i)
      for (int64_t o = 0; o < out; ++o) t[o * in + i] = data[i * out + o];
    data.swap(t);
  } else if (layout == PartLayout::NeoxQkv) {
    const int64_t rows = expected[0], cols = expected.size() == 2 ? expected[1] : 1;
    std::vector<float> t(data.size());
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t dst = neox_qkv_row(r, spec.num_heads, spec.head_dim);
      std::copy(data.begin() + r * cols, data.begin() + (r + 1) * cols, t.begin() + dst * cols);
    }
    data.swap(t);
  }
  return data;
}

Shape fused_shape(const CanonicalWeight& w) {
  Shape shape = w.part_shapes.at(0);
  for (size_t i = 1; i < w.part_shapes.size(); ++i) shape[0] += w.part_shapes[i][0];
  return shape;
}

// Places a canonical tensor into its slot of ModelWeights.
Tensor* slot_for(ModelWeights& mw, const std::string& name) {
  static const std::map<std::string, Tensor LayerWeights::*> layer_fields = {
      {"attn_norm.weight", &LayerWeights::attn_norm_w}, {"attn_norm.bias", &LayerWeights::attn_norm_b},
      {"qkv.weight", &LayerWeights::qkv_w},             {"qkv.bias", &LayerWeights::qkv_b},
      {"o.weight", &LayerWeights::o_w},                 {"o.bias", &LayerWeights::o_b},
      {"post_attn_norm.weight", &LayerWeights::post_attn_norm_w},
      {"mlp_norm.weight", &LayerWeights::mlp_norm_w},   {"mlp_norm.bias", &LayerWeights::mlp_norm_b},
      {"up.weight", &LayerWeights::up_w},               {"up.bias", &LayerWeights::up_b},
      {"down.weight", &LayerWeights::down_w},           {"down.bias", &LayerWeights::down_b},
      {"post_mlp_norm.weight", &LayerWeights::post_mlp_norm_w},
  };
  if (name == "embed") return &mw.embed;
  if (name == "pos_embed") return &mw.pos_embed;
  if (name == "final_norm.weight") return &mw.final_norm_w;
  if (name == "final_norm.bias") return &mw.final_norm_b;
  if (name == "lm_head") return &mw.lm_head;
  if (name.rfind("layers.", 0) == 0) {
    size_t dot = name.find('.', 7);
    int layer = std::stoi(name.substr(7, dot - 7));
    auto it = layer_fields.find(name.substr(dot + 1));
    if (it != layer_fields.end() && layer < static_cast<int>(mw.layers.size())) return &(mw.layers[layer].*(it->second));
  }
  throw std::logic_error("no slot for canonical weight " + name);
}

}  // namespace

namespace {

// The layer a tensor name belongs to: its first all-digit component
// ("model.layers.3.self_attn.k_scale" -> 3), or -1.
int layer_of(const std::string& name) {
  size_t begin = 0;
  while (begin <= name.size()) {
    const size_t end = std::min(name.find('.', begin), name.size());
    const std::string part = name.substr(begin, end - begin);
    if (!part.empty() && part.size() < 9 && std::all_of(part.begin(), part.end(), ::isdigit)) return std::stoi(part);
    begin = end + 1;
  }
  return -1;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void read_kv_scales(const Checkpoint& ckpt, const ModelSpec& spec, ModelWeights& mw, std::set<std::string>& used) {
  std::vector<std::pair<float, float>> scales(spec.num_layers, {1.0f, 1.0f});
  bool any = false;
  for (const std::string& name : ckpt.names()) {
    const bool k = ends_with(name, ".k_scale"), v = ends_with(name, ".v_scale"), both = ends_with(name, ".kv_scale");
    if (!k && !v && !both) continue;
    const int layer = layer_of(name);
    if (layer < 0 || layer >= spec.num_layers)
      throw ModelError(ckpt.info(name).file + ": KV scale '" + name + "' names no layer of the model");
    const std::vector<float> value = ckpt.read_f32(name);
    if (value.size() != 1 || !(value[0] > 0) || !std::isfinite(value[0]))
      throw ModelError(ckpt.info(name).file + ": KV scale '" + name + "' must be one positive finite number");
    if (k || both) scales[layer].first = value[0];
    if (v || both) scales[layer].second = value[0];
    used.insert(name);
    any = true;
  }
  if (any) mw.kv_scales = std::move(scales);
}

}  // namespace

ModelWeights load_weights(const std::string& model_dir, const ModelSpec& spec, Backend& backend) {
  Checkpoint ckpt = Checkpoint::open_dir(model_dir);
  ModelWeights mw;
  mw.layers.resize(spec.num_layers);
  std::set<std::string> used;
  for (const CanonicalWeight& w : checkpoint_layout(spec)) {
    std::vector<float> fused;
    bool present = true;
    for (size_t i = 0; i < w.parts.size(); ++i) {
      std::string name = resolve(ckpt, w.parts[i]);
      if (name.empty()) {
        if (w.optional) {
          present = false;
          break;
        }
        throw ModelError(model_dir + ": missing tensor '" + w.parts[i] + "' in the checkpoint");
      }
      used.insert(name);
      std::vector<float> part = read_part(ckpt, name, w.part_shapes[i], w.layout, spec);
      fused.insert(fused.end(), part.begin(), part.end());
    }
    if (present) *slot_for(mw, w.name) = backend.upload(fused.data(), fused_shape(w));
  }
  read_kv_scales(ckpt, spec, mw, used);
  for (const std::string& name : ckpt.names())
    if (!used.count(name) && !is_ignored_buffer(name))
      throw ModelError(ckpt.info(name).file + ": unexpected tensor '" + name + "' for model_type " + spec.model_type);
  if (!mw.lm_head.defined()) mw.lm_head = mw.embed;
  return mw;
}

ModelWeights dummy_weights(const ModelSpec& spec, Backend& backend, uint64_t seed) {
  ModelWeights mw;
  mw.layers.resize(spec.num_layers);
  uint64_t index = 0;
  for (const CanonicalWeight& w : checkpoint_layout(spec)) {
    if (w.optional) continue;
    Tensor t = backend.empty(fused_shape(w));
    const bool is_norm = w.name.find("norm.weight") != std::string::npos;
    const bool is_bias = w.name.size() > 5 && w.name.compare(w.name.size() - 5, 5, ".bias") == 0;
    if (is_norm) {
      backend.fill(t, spec.norm_one_plus_weight ? 0.0f : 1.0f);
    } else if (is_bias) {
      backend.fill(t, 0.0f);
    } else {
      backend.fill_random(t, seed * 1000003 + index++, 0.02f);
    }
    *slot_for(mw, w.name) = t;
  }
  if (!mw.lm_head.defined()) mw.lm_head = mw.embed;
  return mw;
}

}  // namespace lorax
