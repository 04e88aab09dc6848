#include <cstdio>
#include <exception>
#include <map>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"

namespace lorax::cli {
namespace {
struct Entry {
  std::string summary;
  Command fn;
};
std::map<std::string, Entry>& registry() {
  static std::map<std::string, Entry> commands;
  return commands;
}
}  // namespace

CommandRegistration::CommandRegistration(const char* name, const char* summary, Command fn) {
  registry()[name] = Entry{summary, fn};
}
}  // namespace lorax::cli

int main(int argc, char** argv) {
  using namespace lorax::cli;
  auto usage = [] {
    std::fprintf(stderr, "usage: lorax-engine <command> [flags]\ncommands:\n");
    for (auto& [name, entry] : registry()) std::fprintf(stderr, "  %-12s %s\n", name.c_str(), entry.summary.c_str());
  };
  if (argc < 2) {
    usage();
    return 2;
  }
  std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    usage();
    return 0;
  }
  auto it = registry().find(name);
  if (it == registry().end()) {
    std::fprintf(stderr, "error: unknown command '%s'\n", name.c_str());
    usage();
    return 2;
  }
  std::vector<std::string> args(argv + 2, argv + argc);
  try {
    return it->second.fn(args);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
