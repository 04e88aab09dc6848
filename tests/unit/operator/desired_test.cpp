// Desired objects of a LoraxDeployment. Expectations come from DESIGN.md §4 (engine
// flags, CRD fields) and the Kubernetes API conventions; tests/operator/test_schemas.py
// also validates the same objects against the official Kubernetes JSON schemas.
#include <gtest/gtest.h>

#include <algorithm>

#include "controllers/desired.h"
#include "controllers/labels.h"
#include "controllers/model_source.h"

using namespace lorax::op;

static json ldep(json spec) {
  return {{"apiVersion", "lorax.dev/v1alpha1"},
          {"kind", "LoraxDeployment"},
          {"metadata", {{"name", "llama"}, {"namespace", "ml"}, {"uid", "u-1"}, {"generation", 3}}},
          {"spec", spec}};
}

static std::vector<std::string> args_of(const json& dep) {
  return dep["spec"]["template"]["spec"]["containers"][0]["args"].get<std::vector<std::string>>();
}

static std::string flag(const std::vector<std::string>& a, const std::string& f) {
  auto it = std::find(a.begin(), a.end(), f);
  return it == a.end() || it + 1 == a.end() ? "<absent>" : *(it + 1);
}

TEST(Sources, ParsesEveryScheme) {
  EXPECT_EQ(parse_source("hf://meta/llama", false).repo, "meta/llama");
  auto p = parse_source("pvc://models/llama/7b", false);
  EXPECT_EQ(p.claim, "models");
  EXPECT_EQ(p.path, "llama/7b");
  EXPECT_EQ(parse_source("file:///mnt/m", false).path, "/mnt/m");
  EXPECT_THROW(parse_source("https://x/y", false), std::invalid_argument);
  EXPECT_THROW(parse_source("s3://b/k", true), std::invalid_argument);
  EXPECT_THROW(parse_source("hf://noslash", false), std::invalid_argument);
  EXPECT_THROW(parse_source("pvc://c/../etc", false), std::invalid_argument);
  EXPECT_THROW(parse_source("", false), std::invalid_argument);
}

TEST(Sources, MapsAdaptersToEngineLoadRequests) {
  // adapter_source values of POST /adapters are the engine's: local|hub|s3|url.
  EXPECT_EQ(engine_adapter_ref("hf://org/lora").adapter_source, "hub");
  EXPECT_EQ(engine_adapter_ref("hf://org/lora").adapter_id, "org/lora");
  EXPECT_EQ(engine_adapter_ref("https://h/a.tgz").adapter_source, "url");
  EXPECT_EQ(engine_adapter_ref("file:///a/b").adapter_id, "/a/b");
  EXPECT_EQ(engine_adapter_ref("pvc://loras/x").adapter_id, "/adapters/loras/x");
}

TEST(Deployment, MapsSpecToServeFlags) {
  json l = ldep({{"model", {{"source", "pvc://models/llama"}}},
                 {"replicas", 2},
                 {"engine",
                  {{"dtype", "bfloat16"}, {"numShard", 2}, {"maxInputLength", 1024}, {"maxTotalTokens", 2048},
                   {"maxBatchTotalTokens", 8192}, {"maxBatchPrefillTokens", 4096}, {"args", {"--api-key", "k"}}}},
                 {"adapters", {{"maxActive", 8}, {"maxLoaded", 16}, {"cycleTimeSeconds", 2}}}});
  json dep = desired_deployment(l, {}, Defaults{});
  auto a = args_of(dep);
  ASSERT_EQ(a[0], "serve");
  EXPECT_EQ(flag(a, "--model"), "/model/llama");
  EXPECT_EQ(flag(a, "--port"), "8080");
  EXPECT_EQ(flag(a, "--dtype"), "bfloat16");
  EXPECT_EQ(flag(a, "--num-shard"), "2");
  EXPECT_EQ(flag(a, "--max-input-length"), "1024");
  EXPECT_EQ(flag(a, "--max-total-tokens"), "2048");
  EXPECT_EQ(flag(a, "--max-batch-total-tokens"), "8192");
  EXPECT_EQ(flag(a, "--max-batch-prefill-tokens"), "4096");
  EXPECT_EQ(flag(a, "--max-active-adapters"), "8");
  EXPECT_EQ(flag(a, "--max-loaded-adapters"), "16");
  EXPECT_EQ(flag(a, "--adapter-cycle-time-s"), "2");
  EXPECT_EQ(flag(a, "--api-key"), "k");  // passthrough last
  EXPECT_EQ(dep["spec"]["replicas"], 2);
  const json& c = dep["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(c["resources"]["limits"]["nvidia.com/gpu"], "2");  // GPUs = numShard
  EXPECT_EQ(c["readinessProbe"]["httpGet"]["path"], "/health");
  EXPECT_EQ(c["livenessProbe"]["httpGet"]["path"], "/health");
  const json& vols = dep["spec"]["template"]["spec"]["volumes"];
  EXPECT_EQ(vols[0]["emptyDir"]["medium"], "Memory");
  EXPECT_EQ(vols[2]["persistentVolumeClaim"]["claimName"], "models");
  EXPECT_EQ(dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"], "true");
  EXPECT_EQ(dep["metadata"]["ownerReferences"][0]["uid"], "u-1");
  EXPECT_EQ(dep["metadata"]["ownerReferences"][0]["controller"], true);
  // The pod template's labels must satisfy the selector (apps/v1 rejects it otherwise).
  EXPECT_TRUE(is_subset(dep["spec"]["selector"]["matchLabels"], dep["spec"]["template"]["metadata"]["labels"]));
}

TEST(Deployment, ModelSourcesPickVolumes) {
  json hf = desired_deployment(ldep({{"model", {{"source", "hf://org/m"}}}}), {}, Defaults{});
  EXPECT_EQ(flag(args_of(hf), "--model"), "org/m");
  EXPECT_TRUE(hf["spec"]["template"]["spec"]["volumes"][2].contains("emptyDir"));
  json file = desired_deployment(ldep({{"model", {{"source", "file:///srv/m"}}}}), {}, Defaults{});
  EXPECT_EQ(file["spec"]["template"]["spec"]["volumes"][2]["hostPath"]["path"], "/srv/m");
  EXPECT_EQ(flag(args_of(file), "--model"), "/model");
  json cpu = desired_deployment(ldep({{"model", {{"source", "hf://o/m"}}}, {"engine", {{"device", "cpu"}}}}), {},
                                Defaults{});
  EXPECT_FALSE(cpu["spec"]["template"]["spec"]["containers"][0].contains("resources"));  // no GPU on cpu
  EXPECT_THROW(desired_deployment(ldep({{"model", {{"source", "s3://x"}}}}), {}, Defaults{}), std::invalid_argument);
}

TEST(Deployment, PvcAdaptersAreMounted) {
  json a = {{"metadata", {{"name", "a1"}}}, {"spec", {{"source", "pvc://loras/a1"}}}};
  json dep = desired_deployment(ldep({{"model", {{"source", "hf://o/m"}}}}), {a}, Defaults{});
  auto mounts = dep["spec"]["template"]["spec"]["containers"][0]["volumeMounts"];
  EXPECT_EQ(mounts.back()["mountPath"], "/adapters/loras");
}

TEST(Objects, ServicePdbHpaConfigMap) {
  json l = ldep({{"model", {{"source", "hf://o/m"}}},
                 {"service", {{"type", "LoadBalancer"}, {"port", 9000}}},
                 {"autoscaling", {{"minReplicas", 2}, {"maxReplicas", 5}, {"targetQueueSize", 4}}}});
  json svc = desired_service(l);
  EXPECT_EQ(svc["spec"]["type"], "LoadBalancer");
  EXPECT_EQ(svc["spec"]["ports"][0]["port"], 9000);
  EXPECT_EQ(svc["spec"]["selector"], selector_labels("llama"));
  json hpa = desired_hpa(l);
  EXPECT_EQ(hpa["spec"]["scaleTargetRef"]["kind"], "LoraxDeployment");
  EXPECT_EQ(hpa["spec"]["maxReplicas"], 5);
  EXPECT_EQ(hpa["spec"]["metrics"][0]["pods"]["target"]["averageValue"], "4");
  EXPECT_TRUE(desired_hpa(ldep({{"model", {{"source", "hf://o/m"}}}})).is_null());
  EXPECT_EQ(desired_pdb(l)["spec"]["maxUnavailable"], 1);
  json a2 = {{"metadata", {{"name", "b"}}}, {"spec", {{"source", "hf://o/b"}, {"preload", true}}}};
  json a1 = {{"metadata", {{"name", "a"}}}, {"spec", {{"source", "https://h/x.tgz"}, {"sha256", std::string(64, 'f')}}}};
  json bad = {{"metadata", {{"name", "c"}}}, {"spec", {{"source", "ftp://x"}}}};
  json cm = desired_adapter_configmap(l, {a2, bad, a1});
  json list = json::parse(cm["data"]["adapters.json"].get<std::string>());
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["name"], "a");
  EXPECT_EQ(list[1]["adapter_source"], "hub");
  EXPECT_EQ(list[0]["adapter_source"], "url");
  EXPECT_EQ(list[0]["sha256"], std::string(64, 'f'));
  EXPECT_EQ(cm["metadata"]["name"], "llama-adapters");
}

TEST(Apply, QuantitiesCompareByValue) {
  // The API server canonicalizes quantities on write (k8s.io/apimachinery resource.Quantity).
  EXPECT_TRUE(is_subset(json{{"m", "1024Mi"}}, json{{"m", "1Gi"}}));
  EXPECT_TRUE(is_subset(json{{"m", 17179869184}}, json{{"m", "16Gi"}}));
  EXPECT_TRUE(is_subset(json{{"c", "1000m"}}, json{{"c", "1"}}));
  EXPECT_TRUE(is_subset(json{{"c", "0.5"}}, json{{"c", "500m"}}));
  EXPECT_TRUE(is_subset(json{{"c", "1e3"}}, json{{"c", "1k"}}));
  EXPECT_FALSE(is_subset(json{{"m", "1Gi"}}, json{{"m", "1G"}}));
  EXPECT_FALSE(is_subset(json{{"i", "engine:1"}}, json{{"i", "engine:2"}}));
  EXPECT_FALSE(is_subset(json{{"p", "http"}}, json{{"p", "https"}}));
}

TEST(Apply, SubsetAndHash) {
  json d = {{"a", 1}, {"b", {{"c", json::array({{{"x", 1}}})}}}};
  json o = {{"a", 1.0}, {"z", 2}, {"b", {{"c", json::array({{{"x", 1}, {"y", 2}}})}}}};
  EXPECT_TRUE(is_subset(d, o));
  o["b"]["c"][0]["x"] = 2;  // drift
  EXPECT_FALSE(is_subset(d, o));
  json m1 = with_applied_hash({{"metadata", {{"name", "n"}}}, {"spec", {{"k", 1}}}});
  json m2 = with_applied_hash({{"metadata", {{"name", "n"}}}, {"spec", json::object()}});
  EXPECT_NE(m1["metadata"]["annotations"][kAppliedHashAnnotation], m2["metadata"]["annotations"][kAppliedHashAnnotation]);
  EXPECT_EQ(with_applied_hash(m1), m1);  // idempotent
}
