// Subcommands of lorax-engine. Each takes the arguments after its name and
// returns the process exit code; errors are printed as one line on stderr.
#pragma once
#include <string>
#include <vector>

namespace lorax::cli {

using Command = int (*)(const std::vector<std::string>& args);

// Each command's translation unit registers itself, so the CLI builds with
// whichever modules are present.
struct CommandRegistration {
  CommandRegistration(const char* name, const char* summary, Command fn);
};

}  // namespace lorax::cli
