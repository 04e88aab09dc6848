// The sentence-transformers module list of an embedding model: what is read
// from the fixture (tests/fixtures/models/qwen2-embed), and every unsupported or
// broken layout refused with a ModelError that names it (never a crash or a
// silently different embedding).
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "model/embedding_head.h"
#include "model/model_spec.h"

namespace lorax {
namespace {

namespace fs = std::filesystem;
const fs::path kFixture = "tests/fixtures/models/qwen2-embed";

struct Copy {
  fs::path dir = fs::temp_directory_path() / ("embed-head-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
                                              ::testing::UnitTest::GetInstance()->current_test_info()->name());
  Copy() {
    fs::remove_all(dir);
    fs::copy(kFixture, dir, fs::copy_options::recursive);
  }
  ~Copy() { fs::remove_all(dir); }
  void edit(const fs::path& file, const std::function<void(nlohmann::json&)>& f) const {
    std::ifstream in(dir / file);
    nlohmann::json j = nlohmann::json::parse(in);
    f(j);
    std::ofstream(dir / file) << j.dump();
  }
};

std::string error_of(const fs::path& dir) {
  try {
    load_embedding_head(dir, 64);
  } catch (const ModelError& e) {
    return e.what();
  }
  return "";
}

TEST(EmbeddingHead, ReadsTheFixture) {
  auto head = load_embedding_head(kFixture, 64);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->pooling, EmbeddingHead::Pooling::Mean);
  ASSERT_EQ(head->dense.size(), 1u);
  EXPECT_EQ(head->dense[0].out, 32);
  EXPECT_FALSE(head->dense[0].tanh);
  EXPECT_TRUE(head->normalize);
  EXPECT_EQ(head->dimension(), 32);
  EXPECT_FALSE(load_embedding_head("tests/fixtures/models/llama", 64));  // no modules.json: a generation model
}

TEST(EmbeddingHead, RefusesWhatItCannotCompute) {
  {
    Copy c;
    c.edit("1_Pooling/config.json", [](auto& j) { j["pooling_mode"] = "max"; });
    EXPECT_NE(error_of(c.dir).find("pooling mode `max`"), std::string::npos) << error_of(c.dir);
  }
  {
    Copy c;
    c.edit("2_Dense/config.json", [](auto& j) { j["activation_function"] = "torch.nn.modules.activation.GELU"; });
    EXPECT_NE(error_of(c.dir).find("GELU"), std::string::npos);
  }
  {
    Copy c;
    c.edit("2_Dense/config.json", [](auto& j) { j["in_features"] = 48; });
    EXPECT_NE(error_of(c.dir).find("48 inputs"), std::string::npos);
  }
  {
    Copy c;
    fs::rename(c.dir / "2_Dense/model.safetensors", c.dir / "2_Dense/pytorch_model.bin");
    EXPECT_NE(error_of(c.dir).find("pickled"), std::string::npos);
  }
  {
    Copy c;
    c.edit("modules.json", [](auto& j) { j.erase(1); });  // no Pooling: Dense would read token states
    EXPECT_NE(error_of(c.dir).find("not supported"), std::string::npos) << error_of(c.dir);
  }
  {
    Copy c;
    std::ofstream(c.dir / "modules.json") << "[{";
    EXPECT_NE(error_of(c.dir).find("not valid JSON"), std::string::npos);
  }
}

TEST(EmbeddingHead, ProjectsAndNormalizes) {
  EmbeddingHead head;
  head.hidden_size = 2;
  head.dense.push_back({2, 2, {1, 2, 3, 4}, {1, -1}, false});
  head.normalize = true;
  const auto v = head.project({1.0, 1.0});  // [1*1+2*1+1, 3*1+4*1-1] = [4, 6] / |.|
  ASSERT_EQ(v.size(), 2u);
  EXPECT_NEAR(v[0], 4 / std::sqrt(52.0), 1e-7);
  EXPECT_NEAR(v[1], 6 / std::sqrt(52.0), 1e-7);
}

}  // namespace
}  // namespace lorax
