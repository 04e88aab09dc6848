#include "controllers/model_source.h"

#include <stdexcept>

namespace lorax::op {

static bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

Source parse_source(const std::string& uri, bool allow_https) {
  auto bad = [&](const std::string& why) { return std::invalid_argument("invalid source '" + uri + "': " + why); };
  if (uri.find_first_of(" \t\n") != std::string::npos) throw bad("contains whitespace");
  if (starts_with(uri, "hf://")) {
    std::string repo = uri.substr(5);
    auto slash = repo.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == repo.size()) throw bad("expected hf://org/name");
    return {SourceKind::HuggingFace, repo, "", ""};
  }
  if (starts_with(uri, "pvc://")) {
    std::string rest = uri.substr(6);
    auto slash = rest.find('/');
    std::string claim = rest.substr(0, slash);
    if (claim.empty()) throw bad("expected pvc://claim/path");
    std::string path = slash == std::string::npos ? "" : rest.substr(slash + 1);
    while (!path.empty() && path.back() == '/') path.pop_back();
    if (path.find("..") != std::string::npos) throw bad("'..' is not allowed");
    return {SourceKind::Pvc, "", claim, path};
  }
  if (starts_with(uri, "file://")) {
    std::string path = uri.substr(7);
    if (path.empty() || path[0] != '/') throw bad("expected file:///absolute/path");
    return {SourceKind::File, "", "", path};
  }
  if (starts_with(uri, "https://")) {
    if (!allow_https) throw bad("https:// is only allowed for adapters");
    if (uri.size() <= 8) throw bad("empty URL");
    return {SourceKind::Https, uri, "", ""};
  }
  throw bad("scheme must be hf://, pvc://, file://" + std::string(allow_https ? " or https://" : ""));
}

}  // namespace lorax::op
