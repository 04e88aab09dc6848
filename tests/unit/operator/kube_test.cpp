// kube/ pieces: work queue semantics (as client-go documents them), kubeconfig and
// in-cluster configuration, REST paths.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "kube/config.h"
#include "kube/resource.h"
#include "kube/workqueue.h"

using namespace lorax::kube;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

TEST(WorkQueue, DeduplicatesQueuedKeys) {
  WorkQueue q("t", nullptr);
  q.add("a");
  q.add("b");
  q.add("a");
  EXPECT_EQ(q.len(), 2u);
  EXPECT_EQ(*q.get(), "a");
  EXPECT_EQ(*q.get(), "b");
}

TEST(WorkQueue, KeyInProcessingIsRequeuedOnDoneNotHandedOut) {
  WorkQueue q("t", nullptr);
  q.add("a");
  auto k = q.get();
  q.add("a");  // changed while a worker holds it
  EXPECT_EQ(q.len(), 0u);  // not given to a second worker
  q.done(*k);
  EXPECT_EQ(q.len(), 1u);
  EXPECT_EQ(*q.get(), "a");
}

TEST(WorkQueue, RateLimitedBackoffGrowsAndForgetResets) {
  WorkQueue q("t", nullptr, 20ms, 1s);
  auto t0 = std::chrono::steady_clock::now();
  q.add_rate_limited("k");  // 20ms
  EXPECT_EQ(*q.get(), "k");
  q.done("k");
  auto t1 = std::chrono::steady_clock::now();
  q.add_rate_limited("k");  // 40ms
  EXPECT_EQ(*q.get(), "k");
  auto t2 = std::chrono::steady_clock::now();
  EXPECT_GE(t1 - t0, 20ms);
  EXPECT_GE(t2 - t1, 40ms);
  EXPECT_EQ(q.failures("k"), 2);
  q.forget("k");
  EXPECT_EQ(q.failures("k"), 0);
}

TEST(WorkQueue, ShutdownWakesWorkers) {
  WorkQueue q("t", nullptr);
  std::thread t([&] { EXPECT_FALSE(q.get().has_value()); });
  std::this_thread::sleep_for(20ms);
  q.shutdown();
  t.join();
}

static fs::path tmpdir() {
  fs::path d = fs::temp_directory_path() / ("lorax-kube-test-" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

TEST(Config, KubeconfigCurrentContext) {
  fs::path d = tmpdir();
  std::ofstream(d / "kc") << R"(apiVersion: v1
kind: Config
current-context: b
clusters:
- name: c1
  cluster: {server: "https://one:6443"}
- name: c2
  cluster:
    server: https://two:6443/
    certificate-authority-data: aGVsbG8=
    insecure-skip-tls-verify: true
users:
- name: u
  user: {token: s3cr3t, client-certificate: certs/c.pem}
contexts:
- name: a
  context: {cluster: c1, user: u}
- name: b
  context: {cluster: c2, user: u, namespace: ml}
)";
  ClusterConfig c = load_kubeconfig((d / "kc").string());
  EXPECT_EQ(c.server, "https://two:6443");
  EXPECT_EQ(c.ca_data, "hello");  // base64 of "hello"
  EXPECT_TRUE(c.insecure);
  EXPECT_EQ(c.bearer(), "s3cr3t");
  EXPECT_EQ(c.default_namespace, "ml");
  EXPECT_EQ(c.client_cert_file, (d / "certs/c.pem").string());  // relative to the kubeconfig
  std::ofstream(d / "bad") << "current-context: x\ncontexts: []\n";
  EXPECT_THROW(load_kubeconfig((d / "bad").string()), std::runtime_error);
  EXPECT_THROW(load_kubeconfig((d / "missing").string()), std::runtime_error);
  std::ofstream(d / "exec") << "current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n"
                               "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
                               "users: [{name: u, user: {exec: {command: aws}}}]\n";
  EXPECT_THROW(load_kubeconfig((d / "exec").string()), std::runtime_error);
}

TEST(Config, InClusterRereadsRotatedToken) {
  fs::path d = tmpdir() / "sa";
  fs::create_directories(d);
  std::ofstream(d / "token") << "first\n";
  std::ofstream(d / "ca.crt") << "x";
  std::ofstream(d / "namespace") << "lorax-system";
  ::setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
  ::setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  ClusterConfig c = load_in_cluster(d.string());
  EXPECT_EQ(c.server, "https://10.0.0.1:443");
  EXPECT_EQ(c.default_namespace, "lorax-system");
  EXPECT_EQ(c.bearer(), "first");
  std::this_thread::sleep_for(20ms);
  std::ofstream(d / "token") << "second\n";  // kubelet rotates the projected token
  fs::last_write_time(d / "token", fs::file_time_type::clock::now() + 1s);
  EXPECT_EQ(c.bearer(), "second");
  ::unsetenv("KUBERNETES_SERVICE_HOST");
  EXPECT_THROW(load_in_cluster(d.string()), std::runtime_error);
}

TEST(Resource, Paths) {
  EXPECT_EQ(resources::kPods.collection(""), "/api/v1/pods");
  EXPECT_EQ(resources::kLoraxDeployments.item("ns", "m", "status"),
            "/apis/lorax.dev/v1alpha1/namespaces/ns/loraxdeployments/m/status");
  EXPECT_EQ(resource_for("autoscaling/v2", "HorizontalPodAutoscaler").plural, "horizontalpodautoscalers");
  EXPECT_EQ(resource_for("policy/v1", "PodDisruptionBudget").plural, "poddisruptionbudgets");
  EXPECT_EQ(resource_for("v1", "Secret").plural, "secrets");
  EXPECT_THROW(resource_for("v1", "Widget"), std::invalid_argument);
  EXPECT_EQ(url_encode("a=b,c/d e"), "a%3Db%2Cc%2Fd%20e");
}
