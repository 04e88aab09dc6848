// `lorax-engine chat-template`: renders a model's chat template for a message
// list, or for many contexts at once (--cases JSONL, one result line each) so
// parity tests run one process instead of dozens.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>

#include "cli/args.h"
#include "cli/commands.h"
#include "tokenizer/chat_template.h"

namespace {

using ojson = nlohmann::ordered_json;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ojson read_json(const std::string& path) { return lorax::parse_json_limited(slurp(path), path); }

// Batch mode. Each input line: {"context": {...}, "template": "..."?}; the
// context is laid over the tokenizer's defaults. Each output line:
// {"ok": true, "text": ...} or {"ok": false, "error": ...}.
int run_cases(const std::string& path, const lorax::ChatTemplateConfig* cfg) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::map<std::string, std::shared_ptr<lorax::ChatTemplate>> cache;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    ojson result;
    try {
      ojson c = lorax::parse_json_limited(line, path + ":" + std::to_string(lineno));
      if (!c.is_object()) throw lorax::TemplateError("case must be a JSON object");
      std::string source;
      if (c.contains("template")) {
        if (!c["template"].is_string()) throw lorax::TemplateError("case template must be a string");
        source = c["template"].get<std::string>();
      } else if (cfg) {
        source = cfg->source;
      } else {
        throw lorax::TemplateError("case has no template and no --tokenizer was given");
      }
      ojson ctx = cfg ? lorax::default_chat_context(*cfg) : ojson::object();
      if (c.contains("context")) {
        if (!c["context"].is_object()) throw lorax::TemplateError("case context must be a JSON object");
        for (auto it = c["context"].begin(); it != c["context"].end(); ++it) ctx[it.key()] = it.value();
      }
      auto& tmpl = cache[source];
      if (!tmpl) tmpl = std::make_shared<lorax::ChatTemplate>(source);
      result["ok"] = true;
      result["text"] = tmpl->render(ctx);
    } catch (const lorax::TemplateError& e) {
      result = ojson::object();
      result["ok"] = false;
      result["error"] = e.what();
    }
    std::string out = result.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fputc('\n', stdout);
  }
  return 0;
}

int run_chat_template(const std::vector<std::string>& argv) {
  lorax::cli::Args args(argv, {"tokenizer", "messages", "tools", "context", "cases", "template-name"},
                        {"add-generation-prompt"});
  if (args.has("cases")) {
    std::unique_ptr<lorax::ChatTemplateConfig> cfg;
    if (args.has("tokenizer"))
      cfg = std::make_unique<lorax::ChatTemplateConfig>(
          lorax::load_chat_template_config(args.require("tokenizer"), args.get_or("template-name", "")));
    return run_cases(args.require("cases"), cfg.get());
  }
  std::string tokenizer = args.require("tokenizer");
  ojson messages = read_json(args.require("messages"));
  if (messages.is_object() && messages.contains("messages")) messages = messages["messages"];
  if (!messages.is_array()) throw lorax::cli::UsageError("--messages must hold a JSON array of messages");
  ojson tools;
  if (args.has("tools")) {
    tools = read_json(args.require("tools"));
    if (!tools.is_array()) throw lorax::cli::UsageError("--tools must hold a JSON array");
  }
  auto cfg = lorax::load_chat_template_config(tokenizer, args.get_or("template-name", ""), args.has("tools"));
  ojson ctx = lorax::default_chat_context(cfg);
  ctx["messages"] = messages;
  if (args.has("tools")) ctx["tools"] = tools;
  ctx["add_generation_prompt"] = args.flag("add-generation-prompt");
  if (args.has("context")) {
    ojson extra = read_json(args.require("context"));
    if (!extra.is_object()) throw lorax::cli::UsageError("--context must hold a JSON object");
    for (auto it = extra.begin(); it != extra.end(); ++it) ctx[it.key()] = it.value();
  }
  lorax::ChatTemplate tmpl(cfg.source);
  std::string text = tmpl.render(ctx);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}

lorax::cli::CommandRegistration reg("chat-template",
                                    "render a model's chat template for messages (or --cases JSONL)",
                                    &run_chat_template);

}  // namespace
