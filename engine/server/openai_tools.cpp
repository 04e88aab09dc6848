#include "server/openai_tools.h"

#include <set>

#include "server/api/generate_api.h"

namespace lorax::server {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

bool present(const ojson& b, const char* k) { return b.is_object() && b.contains(k) && !b[k].is_null(); }

const ToolSpec::Function* find(const ToolSpec& spec, const std::string& name) {
  for (const auto& f : spec.functions)
    if (f.name == name) return &f;
  return nullptr;
}

json call_schema(const ToolSpec::Function& f) {
  return {{"type", "object"},
          {"properties", {{"name", {{"const", f.name}}}, {"arguments", f.parameters}}},
          {"required", {"name", "arguments"}},
          {"additionalProperties", false}};
}

// One {"name", "arguments"|"parameters"} object naming a given tool.
std::optional<ToolCall> one_call(const json& v, const ToolSpec& spec) {
  if (!v.is_object() || !v.contains("name") || !v["name"].is_string()) return std::nullopt;
  const std::string name = v["name"].get<std::string>();
  if (!find(spec, name)) return std::nullopt;
  const char* key = v.contains("arguments") ? "arguments" : v.contains("parameters") ? "parameters" : nullptr;
  if (!key) return std::nullopt;
  for (auto& [k, _] : v.items())
    if (k != "name" && k != key) return std::nullopt;
  const json& args = v[key];
  // Arguments given as a JSON string (OpenAI's own shape) are kept as that text.
  if (args.is_string()) return ToolCall{name, args.get<std::string>()};
  if (!args.is_object()) return std::nullopt;
  return ToolCall{name, args.dump()};
}

std::optional<std::vector<ToolCall>> calls_of(const json& v, const ToolSpec& spec) {
  std::vector<ToolCall> out;
  if (v.is_array()) {
    if (v.empty()) return std::nullopt;
    for (const json& e : v) {
      auto c = one_call(e, spec);
      if (!c) return std::nullopt;
      out.push_back(std::move(*c));
    }
    return out;
  }
  auto c = one_call(v, spec);
  if (!c) return std::nullopt;
  out.push_back(std::move(*c));
  return out;
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

}  // namespace

ToolSpec parse_tools(const ojson& tools, const ojson& tool_choice, const ojson& parallel_tool_calls) {
  ToolSpec spec;
  if (!parallel_tool_calls.is_null()) {
    if (!parallel_tool_calls.is_boolean()) throw ValidationError("`parallel_tool_calls` must be a boolean");
    spec.parallel = parallel_tool_calls.get<bool>();
  }
  if (!tools.is_null()) {
    if (!tools.is_array()) throw ValidationError("`tools` must be a list");
    std::set<std::string> names;
    for (const ojson& t : tools) {
      if (!t.is_object() || !t.contains("type") || t["type"] != "function" || !present(t, "function") ||
          !t["function"].is_object())
        throw ValidationError("each of `tools` must be {\"type\": \"function\", \"function\": {...}}");
      for (auto& [key, _] : t.items())
        if (key != "type" && key != "function") throw ValidationError("unknown tool field `" + key + "`");
      const ojson& f = t["function"];
      // strict or not, a forced call is decoded under its parameters; auto calls are read back as written.
      for (auto& [key, _] : f.items())
        if (key != "name" && key != "description" && key != "parameters" && key != "strict")
          throw ValidationError("unknown tool `function` field `" + key + "`");
      if (present(f, "strict") && !f["strict"].is_boolean()) throw ValidationError("tool `strict` must be a boolean");
      if (!present(f, "name") || !f["name"].is_string() || f["name"].get<std::string>().empty())
        throw ValidationError("each tool `function` needs a non-empty string `name`");
      const std::string name = f["name"].get<std::string>();
      if (!names.insert(name).second) throw ValidationError("two tools are named `" + name + "`");
      json params = json::object();
      if (present(f, "parameters")) {
        if (!f["parameters"].is_object()) throw ValidationError("tool `" + name + "`: `parameters` must be an object");
        params = json::parse(f["parameters"].dump());
      }
      spec.functions.push_back({name, std::move(params)});
    }
  }
  spec.choice = spec.functions.empty() ? ToolChoice::None : ToolChoice::Auto;
  if (tool_choice.is_null()) return spec;
  if (tool_choice.is_string()) {
    const std::string c = tool_choice.get<std::string>();
    if (c == "none") spec.choice = ToolChoice::None;
    else if (c == "auto") spec.choice = ToolChoice::Auto;
    else if (c == "required") spec.choice = ToolChoice::Required;
    else throw ValidationError("`tool_choice` must be \"none\", \"auto\", \"required\" or a named function");
  } else if (tool_choice.is_object() && tool_choice.contains("type") && tool_choice["type"] == "function" &&
             present(tool_choice, "function") && present(tool_choice["function"], "name") &&
             tool_choice["function"]["name"].is_string()) {
    spec.choice = ToolChoice::Named;
    spec.named = tool_choice["function"]["name"].get<std::string>();
    if (!find(spec, spec.named)) throw ValidationError("`tool_choice` names `" + spec.named + "`, which is not in `tools`");
  } else {
    throw ValidationError("`tool_choice` must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", "
                          "\"function\": {\"name\": ...}}");
  }
  if (spec.functions.empty() && spec.choice != ToolChoice::None)
    throw ValidationError("`tool_choice` needs `tools`");
  return spec;
}

json tool_call_schema(const ToolSpec& spec) {
  if (spec.choice == ToolChoice::Named) return call_schema(*find(spec, spec.named));
  json alternatives = json::array();
  for (const auto& f : spec.functions) alternatives.push_back(call_schema(f));
  json s = {{"type", "array"}, {"minItems", 1}, {"items", {{"anyOf", alternatives}}}};
  if (!spec.parallel) s["maxItems"] = 1;
  return s;
}

std::optional<std::vector<ToolCall>> parse_tool_calls(const std::string& text, const ToolSpec& spec) {
  const std::string body = trim(text);
  static const std::string open = "<tool_call>", close = "</tool_call>";
  if (body.compare(0, open.size(), open) == 0) {  // Hermes / Qwen: one JSON object per block
    std::vector<ToolCall> out;
    size_t at = 0;
    while (at < body.size()) {
      if (body.compare(at, open.size(), open) != 0) return std::nullopt;
      const size_t end = body.find(close, at);
      if (end == std::string::npos) return std::nullopt;
      const json v = json::parse(body.substr(at + open.size(), end - at - open.size()), nullptr, false);
      auto c = one_call(v, spec);
      if (!c) return std::nullopt;
      out.push_back(std::move(*c));
      at = body.find_first_not_of(" \t\r\n", end + close.size());
      if (at == std::string::npos) break;
    }
    if (!spec.parallel && out.size() > 1) return std::nullopt;
    return out;
  }
  const json v = json::parse(body, nullptr, false);
  if (v.is_discarded()) return std::nullopt;
  auto calls = calls_of(v, spec);
  if (calls && !spec.parallel && calls->size() > 1) return std::nullopt;  // not an answer the client allowed
  return calls;
}

json tool_calls_json(const std::vector<ToolCall>& calls, const std::string& id_prefix, bool delta) {
  json out = json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    json c = {{"id", "call_" + id_prefix + "_" + std::to_string(i)},
              {"type", "function"},
              {"function", {{"name", calls[i].name}, {"arguments", calls[i].arguments}}}};
    if (delta) c["index"] = i;
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace lorax::server
