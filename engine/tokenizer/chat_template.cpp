#include "tokenizer/chat_template.h"

#include <filesystem>
#include <optional>
#include <fstream>
#include <sstream>

#include "tokenizer/jinja/interpreter.h"
#include "tokenizer/jinja/value.h"

namespace lorax {

ChatTemplate::ChatTemplate(std::string source)
    : source_(std::move(source)), tmpl_(std::make_unique<jinja::Template>(source_)) {}

ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;

std::string ChatTemplate::render(const nlohmann::json& context) const {
  if (!context.is_object()) throw TemplateError("chat template context must be a JSON object");
  return tmpl_->render(jinja::from_json(context));
}

std::string ChatTemplate::render(const nlohmann::ordered_json& context) const {
  if (!context.is_object()) throw TemplateError("chat template context must be a JSON object");
  return tmpl_->render(jinja::from_json(context));
}

nlohmann::ordered_json parse_json_limited(const std::string& text, const std::string& what) {
  // Scan first: nlohmann's parser and destructor recurse per nesting level.
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > static_cast<int>(jinja::Value::kMaxDepth)) throw TemplateError(what + ": JSON nested too deeply");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  try {
    return nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw TemplateError(what + ": invalid JSON: " + e.what());
  }
}

namespace {

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw TemplateError("cannot read " + p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Special tokens are strings or AddedToken dicts ({"content": ...}) in tokenizer_config.json.
std::optional<std::string> token_text(const nlohmann::ordered_json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

}  // namespace

ChatTemplateConfig load_chat_template_config(const std::string& path, const std::string& name, bool with_tools) {
  namespace fs = std::filesystem;
  fs::path p(path);
  fs::path dir = fs::is_directory(p) ? p : p.parent_path();
  fs::path cfg_path = fs::is_directory(p) ? p / "tokenizer_config.json" : p;
  nlohmann::ordered_json cfg = nlohmann::ordered_json::object();
  if (fs::exists(cfg_path)) {
    cfg = parse_json_limited(read_file(cfg_path), cfg_path.string());
    if (!cfg.is_object()) throw TemplateError(cfg_path.string() + ": expected a JSON object");
  } else if (!fs::is_directory(p)) {
    throw TemplateError("cannot read " + cfg_path.string());
  }
  ChatTemplateConfig out;
  out.special_tokens = nlohmann::ordered_json::object();
  for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}) {
    if (!cfg.contains(key)) continue;
    if (auto t = token_text(cfg[key])) out.special_tokens[key] = *t;
  }
  if (cfg.contains("additional_special_tokens") && cfg["additional_special_tokens"].is_array()) {
    auto list = nlohmann::ordered_json::array();
    for (const auto& v : cfg["additional_special_tokens"])
      if (auto t = token_text(v)) list.push_back(*t);
    out.special_tokens["additional_special_tokens"] = list;
  }
  const auto it = cfg.find("chat_template");
  if (it == cfg.end() || it->is_null()) {
    // Newer checkpoints keep the template beside the config.
    if (fs::exists(dir / "chat_template.jinja")) {
      out.source = read_file(dir / "chat_template.jinja");
      return out;
    }
    if (fs::exists(dir / "chat_template.json")) {
      auto j = parse_json_limited(read_file(dir / "chat_template.json"), (dir / "chat_template.json").string());
      if (j.is_object() && j.contains("chat_template") && j["chat_template"].is_string()) {
        out.source = j["chat_template"].get<std::string>();
        return out;
      }
    }
    throw TemplateError(cfg_path.string() + " has no chat_template");
  }
  if (it->is_string()) {
    if (!name.empty() && name != "default") throw TemplateError("no chat template named '" + name + "'");
    out.source = it->get<std::string>();
    return out;
  }
  if (!it->is_array()) throw TemplateError("chat_template must be a string or a list of {name, template}");
  std::string want = name;
  auto find = [&](const std::string& n) -> const nlohmann::ordered_json* {
    for (const auto& e : *it)
      if (e.is_object() && e.value("name", "") == n && e.contains("template") && e["template"].is_string()) return &e;
    return nullptr;
  };
  if (want.empty()) want = with_tools && find("tool_use") ? "tool_use" : "default";
  const auto* e = find(want);
  if (!e) throw TemplateError("no chat template named '" + want + "'");
  out.source = (*e)["template"].get<std::string>();
  return out;
}

nlohmann::ordered_json default_chat_context(const ChatTemplateConfig& cfg) {
  nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
  ctx["messages"] = nlohmann::ordered_json::array();
  ctx["tools"] = nullptr;
  ctx["documents"] = nullptr;
  ctx["add_generation_prompt"] = false;
  for (auto it = cfg.special_tokens.begin(); it != cfg.special_tokens.end(); ++it) ctx[it.key()] = it.value();
  return ctx;
}

}  // namespace lorax
