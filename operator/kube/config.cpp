#include "kube/config.h"

#include <yaml-cpp/yaml.h>

#include <cpprest/asyncrt_utils.h>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace lorax::kube {

namespace fs = std::filesystem;

static std::string read_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

static std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string ClusterConfig::bearer() const {
  if (token_file.empty()) return token;
  std::lock_guard lock(cache_->mu);
  std::error_code ec;
  auto t = fs::last_write_time(token_file, ec);
  long long mtime = ec ? -2 : static_cast<long long>(t.time_since_epoch().count());
  if (mtime != cache_->mtime) {  // kubelet rewrites the projected token before it expires
    try {
      cache_->token = trim(read_file(token_file));
      cache_->mtime = mtime;
    } catch (const std::exception&) {
      if (cache_->token.empty()) cache_->token = token;
    }
  }
  return cache_->token;
}

ClusterConfig load_in_cluster(const std::string& root) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !port || !*host) throw std::runtime_error("not running in a cluster (KUBERNETES_SERVICE_HOST unset)");
  ClusterConfig c;
  std::string h = host;
  if (h.find(':') != std::string::npos) h = "[" + h + "]";  // IPv6
  c.server = "https://" + h + ":" + port;
  c.token_file = root + "/token";
  c.ca_file = root + "/ca.crt";
  if (!fs::exists(c.token_file)) throw std::runtime_error("service-account token missing: " + c.token_file);
  std::error_code ec;
  if (fs::exists(root + "/namespace", ec)) c.default_namespace = trim(read_file(root + "/namespace"));
  return c;
}

static std::string b64(const std::string& s) {
  auto bytes = utility::conversions::from_base64(s);
  return std::string(bytes.begin(), bytes.end());
}

static YAML::Node named(const YAML::Node& list, const std::string& name, const char* what) {
  if (list && list.IsSequence())
    for (const auto& e : list)
      if (e["name"] && e["name"].as<std::string>() == name) return e;
  throw std::runtime_error(std::string("kubeconfig: ") + what + " '" + name + "' not found");
}

ClusterConfig load_kubeconfig(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot load kubeconfig " + path + ": " + e.what());
  }
  if (!root.IsMap() || !root["current-context"]) throw std::runtime_error("kubeconfig " + path + ": no current-context");
  std::string ctx_name = root["current-context"].as<std::string>();
  YAML::Node ctx = named(root["contexts"], ctx_name, "context")["context"];
  if (!ctx || !ctx["cluster"]) throw std::runtime_error("kubeconfig: context '" + ctx_name + "' has no cluster");
  YAML::Node cluster = named(root["clusters"], ctx["cluster"].as<std::string>(), "cluster")["cluster"];
  ClusterConfig c;
  if (!cluster || !cluster["server"]) throw std::runtime_error("kubeconfig: cluster has no server");
  c.server = cluster["server"].as<std::string>();
  while (!c.server.empty() && c.server.back() == '/') c.server.pop_back();
  fs::path base = fs::path(path).parent_path();
  auto rel = [&](const std::string& p) { return fs::path(p).is_absolute() ? p : (base / p).string(); };
  if (cluster["certificate-authority-data"]) c.ca_data = b64(cluster["certificate-authority-data"].as<std::string>());
  if (cluster["certificate-authority"]) c.ca_file = rel(cluster["certificate-authority"].as<std::string>());
  if (cluster["insecure-skip-tls-verify"]) c.insecure = cluster["insecure-skip-tls-verify"].as<bool>();
  if (ctx["namespace"]) c.default_namespace = ctx["namespace"].as<std::string>();
  if (ctx["user"]) {
    YAML::Node user = named(root["users"], ctx["user"].as<std::string>(), "user")["user"];
    if (user) {
      if (user["token"]) c.token = user["token"].as<std::string>();
      if (user["tokenFile"]) c.token_file = rel(user["tokenFile"].as<std::string>());
      if (user["client-certificate-data"]) c.client_cert_data = b64(user["client-certificate-data"].as<std::string>());
      if (user["client-key-data"]) c.client_key_data = b64(user["client-key-data"].as<std::string>());
      if (user["client-certificate"]) c.client_cert_file = rel(user["client-certificate"].as<std::string>());
      if (user["client-key"]) c.client_key_file = rel(user["client-key"].as<std::string>());
      if (user["exec"] || user["auth-provider"])
        throw std::runtime_error("kubeconfig: exec/auth-provider credentials are not supported; use a token");
    }
  }
  return c;
}

}  // namespace lorax::kube
