// Sentence-embedding models in the sentence-transformers layout (modules.json:
// Transformer -> Pooling -> Dense* -> Normalize?, as Qwen2-based embedders like
// stella_en_1.5B_v5 ship them): the decoder's last hidden states of the prompt
// pooled, then the Dense projections and an optional L2 normalization. The
// decoder itself is the ordinary one; this is what follows it, on the host (a
// few small matrix-vector products per text).
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace lorax {

struct EmbeddingHead {
  enum class Pooling { Mean, Cls, LastToken };
  struct Dense {
    int64_t in = 0, out = 0;
    std::vector<float> weight;  // [out, in]
    std::vector<float> bias;    // [out] or empty
    bool tanh = false;          // else the identity
  };
  Pooling pooling = Pooling::Mean;
  std::vector<Dense> dense;
  bool normalize = false;
  int64_t hidden_size = 0;  // what the pooling reads

  int64_t dimension() const { return dense.empty() ? hidden_size : dense.back().out; }
  // Pooled hidden state -> the embedding (the Dense layers, then normalization).
  std::vector<float> project(const std::vector<double>& pooled) const;
};

// The head described by `model_dir`/modules.json, or none when there is no such
// file (a generation model). Throws ModelError naming a module or setting that
// is not supported (another pooling mode, a pickled Dense, a wrong shape...).
std::optional<EmbeddingHead> load_embedding_head(const std::filesystem::path& model_dir, int64_t hidden_size);

}  // namespace lorax
