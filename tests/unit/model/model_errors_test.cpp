// Bad checkpoints and configs must fail with one clear message naming the file
// and the tensor or field, never crash.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "model/checkpoint_layout.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "safetensors_writer.h"

namespace lorax {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::TensorSpec;
using testing::write_safetensors;

const json kLlamaConfig = {{"model_type", "llama"},        {"vocab_size", 32},        {"hidden_size", 16},
                           {"num_hidden_layers", 1},       {"num_attention_heads", 2}, {"num_key_value_heads", 1},
                           {"intermediate_size", 24},      {"max_position_embeddings", 64},
                           {"tie_word_embeddings", true}};

std::vector<TensorSpec> llama_tensors() {
  ModelSpec spec = parse_model_spec(kLlamaConfig.dump(), "config.json");
  std::vector<TensorSpec> out;
  for (auto& w : checkpoint_layout(spec)) {
    if (w.optional) continue;
    for (size_t i = 0; i < w.parts.size(); ++i) out.push_back({w.parts[i], "F32", w.part_shapes[i]});
  }
  return out;
}

class ModelErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lorax-model-errors-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    std::ofstream(dir_ / "config.json") << kLlamaConfig.dump();
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string load_error() {
    auto backend = make_cpu_backend(1);
    try {
      Model::load(dir_.string(), *backend);
    } catch (const ModelError& e) {
      return e.what();
    }
    return "";
  }
  fs::path dir_;
};

TEST_F(ModelErrors, ValidCheckpointLoads) {
  write_safetensors(dir_ / "model.safetensors", llama_tensors());
  EXPECT_EQ(load_error(), "");
}

TEST_F(ModelErrors, UnknownModelType) {
  json c = kLlamaConfig;
  c["model_type"] = "mamba";
  std::ofstream(dir_ / "config.json") << c.dump();
  EXPECT_NE(load_error().find("unknown model_type 'mamba'"), std::string::npos);
}

TEST_F(ModelErrors, BadJsonConfig) {
  std::ofstream(dir_ / "config.json") << "{\"model_type\": \"llama\",";
  std::string err = load_error();
  EXPECT_NE(err.find("config.json"), std::string::npos) << err;
  EXPECT_NE(err.find("invalid JSON"), std::string::npos) << err;
}

TEST_F(ModelErrors, MissingConfigField) {
  json c = kLlamaConfig;
  c.erase("hidden_size");
  std::ofstream(dir_ / "config.json") << c.dump();
  EXPECT_NE(load_error().find("missing required field 'hidden_size'"), std::string::npos);
}

TEST_F(ModelErrors, MissingTensor) {
  auto t = llama_tensors();
  t.erase(t.begin() + 2);
  write_safetensors(dir_ / "model.safetensors", t);
  std::string err = load_error();
  EXPECT_NE(err.find("missing tensor 'model.layers.0."), std::string::npos) << err;
}

TEST_F(ModelErrors, ExtraTensor) {
  auto t = llama_tensors();
  t.push_back({"model.layers.7.mystery.weight", "F32", {4}});
  write_safetensors(dir_ / "model.safetensors", t);
  std::string err = load_error();
  EXPECT_NE(err.find("unexpected tensor 'model.layers.7.mystery.weight'"), std::string::npos) << err;
  EXPECT_NE(err.find("model.safetensors"), std::string::npos) << err;
}

TEST_F(ModelErrors, WrongShape) {
  auto t = llama_tensors();
  t[0].shape = {31, 16};
  write_safetensors(dir_ / "model.safetensors", t);
  std::string err = load_error();
  EXPECT_NE(err.find("tensor 'model.embed_tokens.weight' has shape [31, 16], expected [32, 16]"), std::string::npos) << err;
}

TEST_F(ModelErrors, WrongDtype) {
  auto t = llama_tensors();
  t[0].dtype = "I32";
  write_safetensors(dir_ / "model.safetensors", t);
  std::string err = load_error();
  EXPECT_NE(err.find("dtype I32"), std::string::npos) << err;
}

TEST_F(ModelErrors, HalfPrecisionLoads) {
  auto t = llama_tensors();
  for (auto& x : t) x.dtype = "BF16";
  write_safetensors(dir_ / "model.safetensors", t);
  EXPECT_EQ(load_error(), "");
}

TEST_F(ModelErrors, TruncatedFile) {
  write_safetensors(dir_ / "model.safetensors", llama_tensors(), 10);
  std::string err = load_error();
  EXPECT_NE(err.find("truncated"), std::string::npos) << err;
}

TEST_F(ModelErrors, CorruptHeader) {
  std::string blob(8, '\0');
  uint64_t len = 12;
  std::memcpy(blob.data(), &len, 8);
  blob += "{not json!!}";
  std::ofstream(dir_ / "model.safetensors", std::ios::binary) << blob;
  std::string err = load_error();
  EXPECT_NE(err.find("corrupt safetensors header"), std::string::npos) << err;
}

TEST_F(ModelErrors, NoWeights) {
  std::string err = load_error();
  EXPECT_NE(err.find("no model.safetensors"), std::string::npos) << err;
}

TEST_F(ModelErrors, ShardIndexNamesMissingTensor) {
  auto t = llama_tensors();
  write_safetensors(dir_ / "model-00001-of-00001.safetensors", t);
  json index = {{"weight_map", {{"model.norm.weight", "model-00001-of-00001.safetensors"},
                                {"ghost.weight", "model-00001-of-00001.safetensors"}}}};
  std::ofstream(dir_ / "model.safetensors.index.json") << index.dump();
  std::string err = load_error();
  EXPECT_NE(err.find("tensor 'ghost.weight' listed in the index is missing"), std::string::npos) << err;
}

// Found by tests/fuzz (safetensors_header): a shape whose element count overflowed
// int64 was undefined behaviour, and one whose byte size wrapped around 2^64 was
// accepted as a tensor of 0 bytes.
TEST_F(ModelErrors, ShapeWhoseSizeOverflows) {
  for (const json& shape : {json::array({1LL << 62}), json::array({1LL << 62, 4}), json::array({1LL << 62, 2, 2})}) {
    const std::string h = json{{"w", {{"dtype", "F32"}, {"shape", shape}, {"data_offsets", {0, 0}}}}}.dump();
    const uint64_t len = h.size();
    std::ofstream(dir_ / "bad.safetensors", std::ios::binary) << std::string(reinterpret_cast<const char*>(&len), 8) << h;
    for (bool map : {false, true}) {
      try {
        SafetensorsFile f((dir_ / "bad.safetensors").string(), map);
        ADD_FAILURE() << "accepted shape " << shape.dump();
      } catch (const ModelError& e) {
        EXPECT_NE(std::string(e.what()).find("byte size does not match its shape and dtype"), std::string::npos) << e.what();
      }
    }
  }
  // Empty tensors stay valid, whatever their other dimensions.
  const std::string h = json{{"e", {{"dtype", "F32"}, {"shape", json::array({0, 1LL << 62})}, {"data_offsets", {0, 0}}}}}.dump();
  const uint64_t len = h.size();
  std::ofstream(dir_ / "empty.safetensors", std::ios::binary) << std::string(reinterpret_cast<const char*>(&len), 8) << h;
  Checkpoint ckpt = Checkpoint::open_file((dir_ / "empty.safetensors").string());
  EXPECT_TRUE(ckpt.read_f32("e").empty());
}

TEST(ModelSpecParsing, Transformers4And5RopeStylesAgree) {
  json v4 = kLlamaConfig;
  v4["rope_theta"] = 500000.0;
  v4["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                        {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 32}};
  json v5 = kLlamaConfig;
  v5["rope_parameters"] = {{"rope_type", "llama3"}, {"rope_theta", 500000.0}, {"factor", 8.0},
                           {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                           {"original_max_position_embeddings", 32}};
  ModelSpec a = parse_model_spec(v4.dump(), "v4"), b = parse_model_spec(v5.dump(), "v5");
  EXPECT_EQ(a.rope.theta, b.rope.theta);
  EXPECT_EQ(a.rope.scaling, RopeScaling::Llama3);
  EXPECT_EQ(b.rope.scaling, RopeScaling::Llama3);
  EXPECT_EQ(a.rope.original_max_position, b.rope.original_max_position);
}

}  // namespace
}  // namespace lorax
