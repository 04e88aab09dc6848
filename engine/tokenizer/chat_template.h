// Chat-template rendering with Python jinja2 + Hugging Face transformers
// semantics (trim_blocks, lstrip_blocks, loopcontrols, transformers' tojson,
// raise_exception and strftime_now), so prompts match the Python stack byte for byte.
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "tokenizer/jinja/error.h"

namespace lorax {

namespace jinja {
class Template;
}

class ChatTemplate {
 public:
  explicit ChatTemplate(std::string source);  // parses; throws TemplateError
  ~ChatTemplate();
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;

  // context: {"messages": [...], "add_generation_prompt": bool, "bos_token": str, "eos_token": str,
  // "tools": [...]?, ...}. Throws TemplateError (raise_exception's message verbatim).
  std::string render(const nlohmann::json& context) const;
  // Same, but keeps the caller's key order, which tojson output depends on
  // (Python dicts keep insertion order; nlohmann::json sorts keys).
  std::string render(const nlohmann::ordered_json& context) const;

  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::unique_ptr<jinja::Template> tmpl_;
};

// Parses JSON text, rejecting nesting deeper than 512 levels with a
// TemplateError: nlohmann's recursive handling of deeper input overflows the
// stack, and requests or message files may be hostile.
nlohmann::ordered_json parse_json_limited(const std::string& text, const std::string& what);

// What a model directory says about chat formatting.
struct ChatTemplateConfig {
  std::string source;                      // the selected template text
  nlohmann::ordered_json special_tokens;   // {"bos_token": "<s>", ...} as transformers passes them
};

// Reads `path` (a tokenizer_config.json or a model directory holding one; a
// chat_template.jinja or chat_template.json beside it is used when the config
// has no template) and selects the template: `name` when given, else
// "tool_use" when tools are passed and such a template exists, else "default".
// Throws TemplateError when there is no chat template.
ChatTemplateConfig load_chat_template_config(const std::string& path, const std::string& name = "",
                                             bool with_tools = false);

// The context transformers renders with: messages, tools (null when absent),
// documents: null, add_generation_prompt, then the special tokens.
nlohmann::ordered_json default_chat_context(const ChatTemplateConfig& cfg);

}  // namespace lorax
