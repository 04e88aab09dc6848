// `lorax-engine generate`: offline generation through the same scheduler and
// request format as the server. `--json` prints exactly the /generate response
// body with details and decoder_input_details on. `--prompts-file` runs many
// /generate bodies (JSON lines) in one continuous batch and prints one response per line.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/engine_setup.h"
#include "server/api/generate_api.h"

namespace lorax::cli {
namespace {

using json = nlohmann::json;

// --flag -> parameters field, with the JSON type it takes.
enum class Kind { Int, Num, Bool, Str };
const std::vector<std::pair<std::string, Kind>>& parameter_flags() {
  static const std::vector<std::pair<std::string, Kind>> flags = {
      {"max-new-tokens", Kind::Int},   {"temperature", Kind::Num},        {"top-k", Kind::Int},
      {"top-p", Kind::Num},            {"typical-p", Kind::Num},          {"repetition-penalty", Kind::Num},
      {"frequency-penalty", Kind::Num}, {"presence-penalty", Kind::Num},  {"seed", Kind::Int},
      {"truncate", Kind::Int},         {"best-of", Kind::Int},            {"adapter-source", Kind::Str},
      {"api-token", Kind::Str},        {"do-sample", Kind::Bool},         {"return-full-text", Kind::Bool},
      {"details", Kind::Bool},         {"decoder-input-details", Kind::Bool}, {"watermark", Kind::Bool},
      {"ignore-eos-token", Kind::Bool}};
  return flags;
}

std::string snake(std::string s) {
  for (char& c : s)
    if (c == '-') c = '_';
  return s;
}

json parameters_from_flags(const Args& args) {
  json p = json::object();
  for (auto& [flag, kind] : parameter_flags()) {
    if (!args.has(flag)) continue;
    switch (kind) {
      case Kind::Int: p[snake(flag)] = args.get_int(flag, 0); break;
      case Kind::Num: p[snake(flag)] = args.get_double(flag, 0); break;
      case Kind::Bool: p[snake(flag)] = true; break;
      case Kind::Str: p[snake(flag)] = args.require(flag); break;
    }
  }
  if (args.has("adapter")) {
    // A directory is loaded from there; anything else is a name under --adapter-dir (or a URL).
    p["adapter_id"] = args.require("adapter");
    if (!args.has("adapter-source") && std::filesystem::is_directory(args.require("adapter"))) {
      // A folder on the command line is relative to where the user runs the command.
      p["adapter_id"] = std::filesystem::absolute(args.require("adapter")).string();
      p["adapter_source"] = "local";
    }
  }
  auto stops = args.get_all("stop");
  if (!stops.empty()) p["stop"] = stops;
  return p;
}

int run_generate(const std::vector<std::string>& argv) {
  std::set<std::string> value_flags = {"model", "prompt", "prompts-file", "adapter", "stop"};
  std::set<std::string> bool_flags = {"json"};
  for (auto& [flag, kind] : parameter_flags()) (kind == Kind::Bool ? bool_flags : value_flags).insert(flag);
  for (auto& f : engine_value_flags()) value_flags.insert(f);
  Args args(argv, value_flags, bool_flags);
  const bool as_json = args.flag("json");

  std::vector<GenerateBody> bodies;
  if (args.has("prompts-file")) {
    std::ifstream in(args.require("prompts-file"));
    if (!in) throw UsageError("cannot read --prompts-file " + args.require("prompts-file"));
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      json j = json::parse(line, nullptr, false);
      if (j.is_discarded()) throw ValidationError("--prompts-file line " + std::to_string(n) + ": invalid JSON");
      bodies.push_back(parse_generate_body(j));
    }
  } else {
    json p = parameters_from_flags(args);
    if (as_json) p["details"] = p["decoder_input_details"] = true;
    bodies.push_back(parse_generate_body(json{{"inputs", args.require("prompt")}, {"parameters", p}}));
  }

  EngineSetup setup = EngineSetup::create(args, bodies);
  std::vector<json> responses(bodies.size());
  // best_of sequences per body; the response is written once all have finished.
  std::vector<std::vector<FinishInfo>> finished(bodies.size());
  for (size_t i = 0; i < bodies.size(); ++i) {
    const std::string prompt = bodies[i].inputs;
    const GenerateParameters params = bodies[i].parameters;
    for (int copy = 0; copy < params.best_of; ++copy) {
      GenerationRequest req = setup.make_request(bodies[i]);
      req.on_finish = [&responses, &finished, i, prompt, params](const FinishInfo& info) {
        if (responses[i].contains("error")) return;
        if (info.reason == FinishReason::Error) {
          responses[i] = {{"error", info.error}, {"error_type", "generation"}};
          return;
        }
        finished[i].push_back(info);
        if (static_cast<int>(finished[i].size()) == params.best_of)
          responses[i] = generate_response(finished[i], params, prompt);
      };
      setup.engine->submit(std::move(req));
    }
  }
  setup.engine->run_until_idle();
  int status = 0;
  for (auto& r : responses) {
    if (r.contains("error")) {
      std::fprintf(stderr, "error: %s\n", r["error"].get<std::string>().c_str());
      status = 1;
    }
    if (as_json || args.has("prompts-file")) {
      std::cout << r.dump() << "\n";
    } else if (r.contains("generated_text")) {
      std::cout << r["generated_text"].get<std::string>() << "\n";
    }
  }
  return status;
}

CommandRegistration reg("generate", "generate text offline (same format as POST /generate)", &run_generate);

}  // namespace
}  // namespace lorax::cli
