#include "model/embedding_head.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "model/model_spec.h"
#include "model/safetensors.h"

namespace lorax {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

json read_json(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw ModelError(file.string() + ": cannot be read");
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) throw ModelError(file.string() + ": not valid JSON");
  return j;
}

// The last dotted part of a module's class ("sentence_transformers.models.Pooling" -> "Pooling").
std::string kind_of(const json& module) {
  const std::string type = module.value("type", "");
  return type.substr(type.rfind('.') + 1);
}

EmbeddingHead::Pooling pooling_of(const fs::path& dir, int64_t hidden) {
  const json c = read_json(dir / "config.json");
  if (c.contains("word_embedding_dimension") && c["word_embedding_dimension"] != hidden)
    throw ModelError((dir / "config.json").string() + ": pools " + c["word_embedding_dimension"].dump() +
                     " dimensions, the decoder has " + std::to_string(hidden));
  if (c.contains("include_prompt") && c["include_prompt"] == false)
    throw ModelError((dir / "config.json").string() + ": include_prompt false is not supported");
  // Newer sentence-transformers write "pooling_mode", older ones one boolean per mode.
  std::string mode = c.value("pooling_mode", "");
  for (const char* m : {"mean_tokens", "cls_token", "lasttoken", "max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens"})
    if (mode.empty() && c.value(std::string("pooling_mode_") + m, false)) mode = m;
  if (mode == "mean" || mode == "mean_tokens") return EmbeddingHead::Pooling::Mean;
  if (mode == "cls" || mode == "cls_token") return EmbeddingHead::Pooling::Cls;
  if (mode == "lasttoken") return EmbeddingHead::Pooling::LastToken;
  throw ModelError((dir / "config.json").string() + ": pooling mode `" + mode + "` is not supported (mean, cls, lasttoken)");
}

EmbeddingHead::Dense dense_of(const fs::path& dir, int64_t in) {
  const json c = read_json(dir / "config.json");
  EmbeddingHead::Dense d;
  d.in = c.value("in_features", int64_t{0});
  d.out = c.value("out_features", int64_t{0});
  if (d.in != in || d.out <= 0)
    throw ModelError((dir / "config.json").string() + ": a Dense of " + std::to_string(d.in) + " inputs follows " +
                     std::to_string(in) + " dimensions");
  const std::string act = c.value("activation_function", "torch.nn.modules.activation.Tanh");  // its default
  if (act == "torch.nn.modules.activation.Tanh") {
    d.tanh = true;
  } else if (act != "torch.nn.modules.linear.Identity") {
    throw ModelError((dir / "config.json").string() + ": activation `" + act + "` is not supported (Identity, Tanh)");
  }
  if (!fs::exists(dir / "model.safetensors"))
    throw ModelError(dir.string() + ": model.safetensors not found (a pickled pytorch_model.bin is refused)");
  Checkpoint ckpt = Checkpoint::open_file((dir / "model.safetensors").string());
  if (!ckpt.has("linear.weight")) throw ModelError(dir.string() + ": linear.weight missing");
  const auto& shape = ckpt.info("linear.weight").shape;
  if (shape != std::vector<int64_t>{d.out, d.in})
    throw ModelError(dir.string() + ": linear.weight does not have shape [" + std::to_string(d.out) + ", " +
                     std::to_string(d.in) + "]");
  d.weight = ckpt.read_f32("linear.weight");
  const bool bias = c.value("bias", true);
  if (bias) {
    if (!ckpt.has("linear.bias") || ckpt.info("linear.bias").shape != std::vector<int64_t>{d.out})
      throw ModelError(dir.string() + ": linear.bias missing or of the wrong shape");
    d.bias = ckpt.read_f32("linear.bias");
  }
  return d;
}

}  // namespace

std::vector<float> EmbeddingHead::project(const std::vector<double>& pooled) const {
  std::vector<double> x = pooled;
  for (const Dense& d : dense) {
    std::vector<double> y(d.out);
    for (int64_t o = 0; o < d.out; ++o) {
      double acc = d.bias.empty() ? 0.0 : d.bias[o];
      const float* w = d.weight.data() + o * d.in;
      for (int64_t i = 0; i < d.in; ++i) acc += static_cast<double>(w[i]) * x[i];
      y[o] = d.tanh ? std::tanh(acc) : acc;
    }
    x = std::move(y);
  }
  if (normalize) {
    double norm = 0;
    for (double v : x) norm += v * v;
    norm = std::max(std::sqrt(norm), 1e-12);  // torch.nn.functional.normalize's eps
    for (double& v : x) v /= norm;
  }
  return std::vector<float>(x.begin(), x.end());
}

std::optional<EmbeddingHead> load_embedding_head(const fs::path& model_dir, int64_t hidden_size) {
  const fs::path modules_file = model_dir / "modules.json";
  if (!fs::exists(modules_file)) return std::nullopt;
  const json modules = read_json(modules_file);
  if (!modules.is_array() || modules.empty()) throw ModelError(modules_file.string() + ": not a list of modules");
  EmbeddingHead head;
  head.hidden_size = hidden_size;
  bool pooled = false;
  int64_t width = hidden_size;
  for (size_t i = 0; i < modules.size(); ++i) {
    const json& m = modules[i];
    const std::string kind = kind_of(m);
    const fs::path dir = model_dir / m.value("path", "");
    if (i == 0) {
      if (kind != "Transformer" || !m.value("path", "").empty())
        throw ModelError(modules_file.string() + ": the first module must be the Transformer at the model's root");
    } else if (kind == "Pooling" && !pooled) {
      head.pooling = pooling_of(dir, hidden_size);
      pooled = true;
    } else if (kind == "Dense" && pooled && !head.normalize) {
      head.dense.push_back(dense_of(dir, width));
      width = head.dense.back().out;
    } else if (kind == "Normalize" && pooled && !head.normalize) {
      head.normalize = true;
    } else {
      throw ModelError(modules_file.string() + ": module `" + m.value("type", "") + "` at position " +
                       std::to_string(i) + " is not supported (Transformer, Pooling, Dense..., Normalize)");
    }
  }
  if (!pooled) throw ModelError(modules_file.string() + ": no Pooling module");
  return head;
}

}  // namespace lorax
