// Where the API server is and how to authenticate: in-cluster service account or kubeconfig.
#pragma once

#include <memory>
#include <mutex>
#include <string>

namespace lorax::kube {

struct ClusterConfig {
  std::string server;  // https://host:port (or http:// for test doubles)
  std::string ca_file, ca_data;                    // PEM
  std::string client_cert_data, client_key_data;   // PEM
  std::string client_cert_file, client_key_file;
  std::string token;       // static bearer token
  std::string token_file;  // re-read when it changes (projected service-account tokens rotate)
  bool insecure = false;   // insecure-skip-tls-verify
  std::string default_namespace = "default";

  // The bearer token to send now ("" for none).
  std::string bearer() const;

private:
  struct TokenCache {
    std::mutex mu;
    std::string token;
    long long mtime = -1;
  };
  std::shared_ptr<TokenCache> cache_ = std::make_shared<TokenCache>();
};

// KUBERNETES_SERVICE_HOST/PORT + /var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}.
// `root` lets tests point at another directory. Throws std::runtime_error when not in a cluster.
ClusterConfig load_in_cluster(const std::string& root = "/var/run/secrets/kubernetes.io/serviceaccount");
// The current context of a kubeconfig file. Throws std::runtime_error with a one-line reason.
ClusterConfig load_kubeconfig(const std::string& path);

}  // namespace lorax::kube
