// Tokenizer: loads tokenizer.json (+ tokenizer_config.json) and runs the
// encode/decode pipeline the way the `tokenizers` library does:
// added tokens -> normalizer -> normalized added tokens -> pre-tokenizer -> BPE -> post-processor.
#include "tokenizer/tokenizer.h"

#include <fstream>
#include <sstream>
#include <unordered_map>

#include "tokenizer/added_vocab.h"
#include "tokenizer/bpe.h"
#include "tokenizer/components.h"
#include "tokenizer/unicode.h"

namespace lorax {
namespace tok {

struct Pipeline {
  std::unique_ptr<BpeModel> model;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<PostProcessor> post_processor;
  std::unique_ptr<Decoder> decoder;
  std::vector<AddedToken> added;
  TokenTrie raw_trie, normalized_trie;
  std::vector<int32_t> added_by_id;  // id -> index into `added`, -1 when not an added token
  std::unordered_map<std::string, int32_t> added_by_content;  // content -> id
  size_t vocab_size = 0;
  size_t n_special_added = 0;  // ids the post-processor adds around one sequence

  struct Truncation {
    size_t max_length;
    bool left;
  };
  struct Padding {
    std::optional<size_t> fixed;  // Fixed(n); BatchLongest pads nothing for one sequence
    std::optional<size_t> multiple_of;
    int32_t pad_id;
    bool left;
  };
  std::optional<Truncation> truncation;
  std::optional<Padding> padding;

  const AddedToken* added_token(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= added_by_id.size() || added_by_id[id] < 0) return nullptr;
    return &added[added_by_id[id]];
  }
};

}  // namespace tok

namespace {

using tok::json;

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw TokenizerError(path.string() + ": cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

// A token given as a string or as an AddedToken dict {"content": ...}.
std::optional<std::string> token_string(const json& j, const char* key) {
  if (!j.contains(key)) return std::nullopt;
  const json& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

TokenizerConfig parse_config(const json& j) {
  TokenizerConfig c;
  c.raw = j;
  c.bos_token = token_string(j, "bos_token");
  c.eos_token = token_string(j, "eos_token");
  c.pad_token = token_string(j, "pad_token");
  c.unk_token = token_string(j, "unk_token");
  if (j.contains("add_bos_token") && j["add_bos_token"].is_boolean()) c.add_bos_token = j["add_bos_token"].get<bool>();
  if (j.contains("add_eos_token") && j["add_eos_token"].is_boolean()) c.add_eos_token = j["add_eos_token"].get<bool>();
  if (j.contains("chat_template")) {
    const json& t = j["chat_template"];
    if (t.is_string()) {
      c.chat_template = t.get<std::string>();
    } else if (t.is_array()) {
      for (auto& item : t)
        if (item.is_object() && item.contains("name") && item.contains("template") && item["name"].is_string() &&
            item["template"].is_string())
          c.chat_templates[item["name"].get<std::string>()] = item["template"].get<std::string>();
      auto it = c.chat_templates.find("default");
      if (it != c.chat_templates.end()) c.chat_template = it->second;
    }
  }
  return c;
}

}  // namespace

Tokenizer::Tokenizer() : p_(std::make_unique<tok::Pipeline>()) {}
Tokenizer::~Tokenizer() = default;

std::shared_ptr<const Tokenizer> Tokenizer::load(const std::filesystem::path& file_or_dir) {
  std::filesystem::path file = file_or_dir;
  std::error_code ec;
  if (std::filesystem::is_directory(file_or_dir, ec)) file = file_or_dir / "tokenizer.json";
  if (!std::filesystem::exists(file, ec)) throw TokenizerError(file.string() + ": no such file");
  auto tok = std::const_pointer_cast<Tokenizer>(from_json_text(read_file(file), file.string()));
  auto config_path = file.parent_path() / "tokenizer_config.json";
  if (std::filesystem::exists(config_path, ec)) {
    json j;
    try {
      j = json::parse(read_file(config_path));
    } catch (const json::exception& e) {
      throw TokenizerError(config_path.string() + ": invalid JSON: " + one_line(e.what()));
    }
    if (!j.is_object()) throw TokenizerError(config_path.string() + ": not a JSON object");
    tok->config_ = parse_config(j);
  }
  return tok;
}

std::shared_ptr<const Tokenizer> Tokenizer::from_json_text(std::string_view text, const std::string& name) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw TokenizerError(name + ": invalid JSON: " + one_line(e.what()));
  }
  std::shared_ptr<Tokenizer> t(new Tokenizer());
  auto& p = *t->p_;
  try {
    if (!j.is_object()) throw std::runtime_error("not a JSON object");
    if (!j.contains("model")) throw std::runtime_error("no \"model\"");
    const json& m = j["model"];
    std::string type = m.value("type", std::string("BPE"));
    if (type != "BPE") throw std::runtime_error("unsupported model type '" + type + "' (only BPE)");
    p.model = std::make_unique<tok::BpeModel>(m);
    auto get = [&](const char* k) -> const json& {
      static const json null;
      return j.contains(k) ? j[k] : null;
    };
    if (const json& t = get("truncation"); !t.is_null()) {
      std::string dir = t.value("direction", std::string("Right"));
      p.truncation = tok::Pipeline::Truncation{
          static_cast<size_t>(tok::json_count(t.at("max_length"), "truncation max_length", SIZE_MAX)), dir == "Left"};
    }
    if (const json& pd = get("padding"); !pd.is_null()) {
      tok::Pipeline::Padding pad{};
      const json& strategy = pd.at("strategy");
      // Bounded: every encode pads to these lengths, so a huge one would allocate terabytes.
      auto pad_length = [](const json& v, const char* what) {
        return static_cast<size_t>(tok::json_count(v, std::string("padding ") + what, tok::kMaxPadLength));
      };
      if (strategy.is_object() && strategy.contains("Fixed")) pad.fixed = pad_length(strategy["Fixed"], "Fixed");
      else if (!(strategy.is_string() && strategy.get<std::string>() == "BatchLongest"))
        throw std::runtime_error("unsupported padding strategy " + strategy.dump());
      if (pd.contains("pad_to_multiple_of") && !pd["pad_to_multiple_of"].is_null())
        pad.multiple_of = pad_length(pd["pad_to_multiple_of"], "pad_to_multiple_of");
      pad.pad_id = pd.contains("pad_id") ? static_cast<int32_t>(tok::json_count(pd["pad_id"], "padding pad_id", tok::kMaxTokenId)) : 0;
      pad.left = pd.value("direction", std::string("Right")) == "Left";
      p.padding = pad;
    }
    p.normalizer = tok::make_normalizer(get("normalizer"));
    p.pre_tokenizer = tok::make_pre_tokenizer(get("pre_tokenizer"));
    p.post_processor = tok::make_post_processor(get("post_processor"));
    p.decoder = tok::make_decoder(get("decoder"));

    int32_t max_id = p.model->max_id();
    for (auto& a : get("added_tokens")) {
      tok::AddedToken at;
      at.content = a.at("content").get<std::string>();
      at.id = static_cast<int32_t>(tok::json_count(a.at("id"), "id of added token '" + at.content + "'", tok::kMaxTokenId));
      // Like the library, a token already in the model's vocab keeps the model's id.
      if (auto model_id = p.model->token_to_id(at.content)) at.id = *model_id;
      at.special = a.value("special", false);
      at.lstrip = a.value("lstrip", false);
      at.rstrip = a.value("rstrip", false);
      at.normalized = a.value("normalized", !at.special);
      at.single_word = a.value("single_word", false);
      if (at.content.empty()) continue;
      max_id = std::max(max_id, at.id);
      p.added.push_back(std::move(at));
    }
    p.vocab_size = static_cast<size_t>(max_id + 1);
    p.added_by_id.assign(p.vocab_size, -1);
    for (size_t i = 0; i < p.added.size(); ++i) {
      auto& a = p.added[i];
      if (p.added_by_id[a.id] < 0) p.added_by_id[a.id] = static_cast<int32_t>(i);
      p.added_by_content.emplace(a.content, a.id);
      if (a.normalized) {
        std::string pattern = a.content;
        if (p.normalizer) p.normalizer->normalize(pattern);
        p.normalized_trie.add(pattern, static_cast<int32_t>(i));
      } else {
        p.raw_trie.add(a.content, static_cast<int32_t>(i));
      }
    }
    // Padding and TemplateProcessing ids must exist.
    if (p.padding && static_cast<size_t>(p.padding->pad_id) >= p.vocab_size)
      throw std::runtime_error("padding pad_id " + std::to_string(p.padding->pad_id) + " is out of range");
    if (p.post_processor) {
      std::vector<int32_t> probe;
      p.post_processor->process(probe);
      p.n_special_added = probe.size();
      for (int32_t id : probe)
        if (id < 0 || static_cast<size_t>(id) >= p.vocab_size)
          throw std::runtime_error("post_processor special token id " + std::to_string(id) + " is out of range");
    }
  } catch (const TokenizerError&) {
    throw;
  } catch (const std::exception& e) {
    throw TokenizerError(name + ": " + one_line(e.what()));
  }
  return t;
}

std::vector<int32_t> Tokenizer::encode(std::string_view input, bool add_special_tokens) const {
  try {
    return encode_impl(input, add_special_tokens);
  } catch (const TokenizerError&) {
    throw;
  } catch (const std::runtime_error& e) {  // e.g. a regex resource limit, an unk_token missing from the vocab
    throw TokenizerError(std::string("encode failed: ") + e.what());
  }
}

std::vector<int32_t> Tokenizer::encode_impl(std::string_view input, bool add_special_tokens) const {
  const auto& p = *p_;
  std::string owned;
  if (!tok::utf8_valid(input)) {
    owned = tok::utf8_lossy(input);  // Python strings are always valid text; bad bytes become U+FFFD
    input = owned;
  }
  std::vector<int32_t> ids;
  std::vector<tok::Segment> raw, norm;
  std::vector<tok::Piece> pieces;
  tok::find_added(input, p.raw_trie, p.added, raw);
  for (auto& seg : raw) {
    if (seg.token >= 0) {
      ids.push_back(p.added[seg.token].id);
      continue;
    }
    std::string text(input.substr(seg.b, seg.e - seg.b));
    if (p.normalizer) p.normalizer->normalize(text);
    tok::find_added(text, p.normalized_trie, p.added, norm);
    for (auto& ns : norm) {
      if (ns.token >= 0) {
        ids.push_back(p.added[ns.token].id);
        continue;
      }
      pieces.clear();
      pieces.push_back({text.substr(ns.b, ns.e - ns.b), seg.b == 0 && ns.b == 0});
      if (p.pre_tokenizer) p.pre_tokenizer->pre_tokenize(pieces);
      for (auto& piece : pieces) p.model->tokenize(piece.text, ids);
    }
  }
  if (p.truncation) {
    // As the library does: room is left for the special tokens the post-processor will add.
    size_t max_len = p.truncation->max_length;
    if (add_special_tokens) max_len = max_len > p.n_special_added ? max_len - p.n_special_added : 0;
    if (ids.size() > max_len) {
      if (p.truncation->left) ids.erase(ids.begin(), ids.end() - static_cast<ptrdiff_t>(max_len));
      else ids.resize(max_len);
    }
  }
  if (add_special_tokens && p.post_processor) p.post_processor->process(ids);
  if (p.padding) {
    size_t target = p.padding->fixed.value_or(ids.size());
    if (size_t m = p.padding->multiple_of.value_or(0); m > 0 && target % m != 0) target += m - target % m;
    if (ids.size() < target) ids.insert(p.padding->left ? ids.begin() : ids.end(), target - ids.size(), p.padding->pad_id);
  }
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  const auto& p = *p_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= p.vocab_size)
      throw TokenizerError("token id " + std::to_string(id) + " is out of range (vocab size " +
                           std::to_string(p.vocab_size) + ")");
    if (auto* a = p.added_token(id)) {
      if (skip_special_tokens && a->special) continue;
      tokens.push_back(a->content);
    } else if (auto* s = p.model->id_to_token(id)) {
      tokens.push_back(*s);
    }
  }
  std::string out;
  if (p.decoder) {
    p.decoder->decode_chain(tokens);
    for (auto& t : tokens) out += t;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) out += ' ';
      out += tokens[i];
    }
  }
  return out;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  auto it = p_->added_by_content.find(std::string(token));
  if (it != p_->added_by_content.end()) return it->second;
  return p_->model->token_to_id(token);
}

std::string Tokenizer::id_to_token(int32_t id) const {
  if (auto* a = p_->added_token(id)) return a->content;
  if (auto* s = p_->model->id_to_token(id)) return *s;
  return "";
}

std::optional<std::string> Tokenizer::token_bytes(int32_t id) const {
  const auto& p = *p_;
  if (id < 0 || static_cast<size_t>(id) >= p.vocab_size) return std::nullopt;
  std::string piece;
  if (auto* a = p.added_token(id)) {
    if (a->special) return std::nullopt;
    piece = a->content;
  } else if (auto* s = p.model->id_to_token(id)) {
    piece = *s;
  } else {
    return std::nullopt;
  }
  if (!p.decoder) return " " + piece;  // decode() joins pieces with spaces
  // After an anchor piece, so that start-of-text rules (Strip, Metaspace's
  // first-token rule) do not apply; "a" is itself in every alphabet used here.
  static const std::string kAnchor = "a";
  std::vector<std::string> pieces = {kAnchor, piece};
  p.decoder->decode_chain_bytes(pieces);
  std::string out;
  for (auto& t : pieces) out += t;
  if (out.compare(0, kAnchor.size(), kAnchor) != 0) return std::nullopt;
  return out.substr(kAnchor.size());
}

bool Tokenizer::is_special(int32_t id) const {
  auto* a = p_->added_token(id);
  return a && a->special;
}

size_t Tokenizer::vocab_size() const { return p_->vocab_size; }

const TokenizerConfig& Tokenizer::config() const { return config_; }

}  // namespace lorax
