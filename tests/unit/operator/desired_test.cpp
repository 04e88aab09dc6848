// Desired objects of a LoraxDeployment. Expectations come from DESIGN.md §4 (engine
// flags, CRD fields) and the Kubernetes API conventions; tests/operator/test_schemas.py
// also validates the same objects against the official Kubernetes JSON schemas.
#include <gtest/gtest.h>

#include <algorithm>

#include "controllers/adapter_plan.h"
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

static json adapter(const std::string& name, json spec) {
  spec["deploymentRef"] = {{"name", "llama"}};
  return {{"metadata", {{"name", name}, {"namespace", "ml"}}}, {"spec", spec}};
}

TEST(Adapters, ClientIdAndRegistryEntryWhateverTheSource) {
  // DESIGN.md §4: clients name an Adapter by metadata.name (or spec.adapterId) on every pod;
  // the registry says where it loads from, in the engine's adapter_source terms.
  json l = ldep({{"model", {{"source", "hf://o/m"}}},
                 {"adapters", {{"claims", {"loras"}}, {"hostPaths", {"/srv/loras"}}}}});
  AdapterPlan hub = plan_adapter(adapter("sql", {{"source", "hf://org/lora"}}), l);
  EXPECT_EQ(hub.id, "sql");
  EXPECT_EQ(hub.source, "hub");
  EXPECT_EQ(hub.location, "org/lora");
  AdapterPlan url = plan_adapter(adapter("u", {{"source", "https://h/a"}, {"sha256", std::string(64, 'a')},
                                               {"adapterId", "team/u-v2"}, {"tokenSecretRef", {{"name", "s"}}}}), l);
  EXPECT_EQ(url.id, "team/u-v2");
  EXPECT_EQ(registry_entry(url)["sha256"], std::string(64, 'a'));
  EXPECT_EQ(registry_entry(url)["token_file"], "/etc/lorax/adapter-tokens/u");
  EXPECT_EQ(plan_adapter(adapter("p", {{"source", "pvc://loras/x"}}), l).location, "/adapters/loras/x");
  EXPECT_EQ(plan_adapter(adapter("f", {{"source", "file:///srv/loras/x"}}), l).location, "/srv/loras/x");
  EXPECT_TRUE(plan_adapter(adapter("f", {{"source", "file:///srv/loras/x"}}), l).problem.empty());
  // Sources on volumes the deployment does not mount are refused, not reported Ready.
  EXPECT_EQ(plan_adapter(adapter("p", {{"source", "pvc://other/x"}}), l).reason, "NotMounted");
  EXPECT_EQ(plan_adapter(adapter("f", {{"source", "file:///srv/loras-evil/x"}}), l).reason, "NotMounted");
  EXPECT_EQ(plan_adapter(adapter("f", {{"source", "file:///etc/x"}}), l).reason, "NotMounted");
  EXPECT_EQ(plan_adapter(adapter("x", {{"source", "hf://o/a"}}), nullptr).reason, "DeploymentNotFound");
  EXPECT_EQ(plan_adapter(adapter("x", {{"source", "ftp://o/a"}}), l).reason, "InvalidSource");
}

TEST(Deployment, MapsSpecToServeFlags) {
  json l = ldep({{"model", {{"source", "pvc://models/llama"}}},
                 {"replicas", 2},
                 {"engine",
                  {{"dtype", "bfloat16"}, {"numShard", 1}, {"modelId", "llama-7b"}, {"shutdownTimeoutSeconds", 45}, {"maxInputLength", 1024}, {"maxTotalTokens", 2048},
                   {"maxBatchTotalTokens", 8192}, {"maxBatchPrefillTokens", 4096}, {"prefixCaching", false},
                   {"kvCacheDtype", "fp8"}, {"maxConnections", 512}, {"maxSchemaBytes", 8192}, {"maxBestOf", 4}, {"args", {"--api-key", "k"}}}},
                 {"adapters", {{"maxActive", 8}, {"maxLoaded", 16}, {"cycleTimeSeconds", 2}, {"maxHost", 0},
                               {"maxHostBytes", 17179869184LL}}}});
  json dep = desired_deployment(l, Defaults{});
  auto a = args_of(dep);
  ASSERT_EQ(a[0], "serve");
  EXPECT_EQ(flag(a, "--model"), "/model/llama");
  EXPECT_EQ(flag(a, "--port"), "8080");
  EXPECT_EQ(flag(a, "--dtype"), "bfloat16");
  EXPECT_EQ(flag(a, "--num-shard"), "1");
  EXPECT_EQ(flag(a, "--model-id"), "llama-7b");
  EXPECT_EQ(flag(a, "--shutdown-timeout-s"), "45");
  EXPECT_EQ(dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], 60);  // longer than the drain
  EXPECT_EQ(flag(a, "--adapter-registry"), "/etc/lorax/adapters/adapters.json");
  EXPECT_EQ(flag(a, "--max-input-length"), "1024");
  EXPECT_EQ(flag(a, "--max-total-tokens"), "2048");
  EXPECT_EQ(flag(a, "--max-batch-total-tokens"), "8192");
  EXPECT_EQ(flag(a, "--max-batch-prefill-tokens"), "4096");
  EXPECT_EQ(flag(a, "--prefix-caching"), "off");
  EXPECT_EQ(flag(a, "--kv-cache-dtype"), "fp8");
  EXPECT_EQ(flag(a, "--max-connections"), "512");
  EXPECT_EQ(flag(a, "--max-schema-bytes"), "8192");
  EXPECT_EQ(flag(a, "--max-best-of"), "4");
  EXPECT_EQ(flag(a, "--max-active-adapters"), "8");
  EXPECT_EQ(flag(a, "--max-loaded-adapters"), "16");
  EXPECT_EQ(flag(a, "--adapter-cycle-time-s"), "2");
  EXPECT_EQ(flag(a, "--max-host-adapters"), "0");  // no host tier: a meaningful zero
  EXPECT_EQ(flag(a, "--max-host-adapter-bytes"), "17179869184");
  EXPECT_EQ(flag(a, "--api-key"), "k");  // passthrough last
  EXPECT_EQ(dep["spec"]["replicas"], 2);
  const json& c = dep["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(c["resources"]["limits"]["nvidia.com/gpu"], "1");  // GPUs = numShard
  EXPECT_EQ(c["readinessProbe"]["httpGet"]["path"], "/health");
  EXPECT_EQ(c["livenessProbe"]["httpGet"]["path"], "/health");
  const json& vols = dep["spec"]["template"]["spec"]["volumes"];
  EXPECT_EQ(vols[0]["emptyDir"]["medium"], "Memory");
  EXPECT_EQ(vols.back()["persistentVolumeClaim"]["claimName"], "models");
  EXPECT_EQ(dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"], "true");
  EXPECT_EQ(dep["metadata"]["ownerReferences"][0]["uid"], "u-1");
  EXPECT_EQ(dep["metadata"]["ownerReferences"][0]["controller"], true);
  // The pod template's labels must satisfy the selector (apps/v1 rejects it otherwise).
  EXPECT_TRUE(is_subset(dep["spec"]["selector"]["matchLabels"], dep["spec"]["template"]["metadata"]["labels"]));
}

static const json* volume(const json& dep, const std::string& name) {
  for (const auto& v : dep["spec"]["template"]["spec"]["volumes"])
    if (v["name"] == name) return &v;
  return nullptr;
}

TEST(Deployment, ModelSourcesPickVolumes) {
  json hf = desired_deployment(ldep({{"model", {{"source", "hf://org/m"}, {"revision", "v2"},
                                               {"tokenSecretRef", {{"name", "hub"}}}}}}), Defaults{});
  // hf://: a fetch-model init container of the same image downloads into the cache the
  // server then reads (same --model arguments, so serve finds it complete).
  const json& pod = hf["spec"]["template"]["spec"];
  ASSERT_EQ(pod["initContainers"].size(), 1u);
  auto fetch = pod["initContainers"][0]["args"].get<std::vector<std::string>>();
  EXPECT_EQ(fetch[0], "download");
  EXPECT_EQ(flag(fetch, "--model"), "hf://org/m");
  EXPECT_EQ(flag(fetch, "--model-revision"), "v2");
  EXPECT_EQ(flag(args_of(hf), "--model"), "hf://org/m");
  EXPECT_EQ(flag(args_of(hf), "--model-cache-dir"), flag(fetch, "--model-cache-dir"));
  ASSERT_NE(volume(hf, "model-cache"), nullptr);
  EXPECT_TRUE(volume(hf, "model-cache")->contains("emptyDir"));
  EXPECT_EQ(pod["initContainers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["name"], "hub");
  EXPECT_EQ(pod["containers"][0]["env"][0]["name"], "HF_TOKEN");
  EXPECT_EQ(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
  EXPECT_EQ(pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"], false);
  json file = desired_deployment(ldep({{"model", {{"source", "file:///srv/m"}}}}), Defaults{});
  EXPECT_EQ((*volume(file, "model"))["hostPath"]["path"], "/srv/m");
  EXPECT_EQ(flag(args_of(file), "--model"), "/model");
  EXPECT_FALSE(file["spec"]["template"]["spec"].contains("initContainers"));
  json cpu = desired_deployment(ldep({{"model", {{"source", "hf://o/m"}}}, {"engine", {{"device", "cpu"}}}}), Defaults{});
  EXPECT_FALSE(cpu["spec"]["template"]["spec"]["containers"][0].contains("resources"));  // no GPU on cpu
  EXPECT_THROW(desired_deployment(ldep({{"model", {{"source", "s3://x"}}}}), Defaults{}), std::invalid_argument);
  EXPECT_EQ(Defaults{}.engine_image, std::string("ghcr.io/lorax-plus/lorax-engine:") + LORAX_VERSION);
}

TEST(Deployment, AdapterVolumesComeFromTheDeploymentNotFromAdapters) {
  json l = ldep({{"model", {{"source", "hf://o/m"}}},
                 {"adapters", {{"claims", {"loras"}}, {"hostPaths", {"/srv/loras"}}, {"urlAllow", {"10.0.0.0/8"}}}}});
  json dep = desired_deployment(l, Defaults{});
  EXPECT_EQ((*volume(dep, "adapter-claim-0"))["persistentVolumeClaim"]["claimName"], "loras");
  EXPECT_EQ((*volume(dep, "adapter-host-0"))["hostPath"]["path"], "/srv/loras");
  EXPECT_EQ((*volume(dep, "adapter-registry"))["configMap"]["name"], "llama-adapters");
  EXPECT_EQ((*volume(dep, "adapter-tokens"))["secret"]["secretName"], "llama-adapter-tokens");
  auto a = args_of(dep);
  EXPECT_EQ(flag(a, "--adapter-root"), "/srv/loras");
  EXPECT_EQ(flag(a, "--adapter-url-allow"), "10.0.0.0/8");
  EXPECT_EQ(spec_problem(ldep({{"model", {{"source", "hf://o/m"}}}, {"engine", {{"numShard", 2}}}})).empty(), false);
  EXPECT_EQ(spec_problem(ldep({{"model", {{"source", "hf://o/m"}}}, {"engine", {{"device", "cpu"}, {"dtype", "bfloat16"}}}}))
                .empty(),
            false);
  EXPECT_EQ(spec_problem(l), "");
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
  json a2 = adapter("b", {{"source", "hf://o/b"}, {"preload", true}});
  json a1 = adapter("a", {{"source", "https://h/x.tgz"}, {"sha256", std::string(64, 'f')}});
  json bad = adapter("c", {{"source", "ftp://x"}});
  json no_secret = adapter("d", {{"source", "hf://o/d"}, {"tokenSecretRef", {{"name", "gone"}}}});
  json with_secret = adapter("e", {{"source", "hf://o/e"}, {"tokenSecretRef", {{"name", "here"}}}});
  json cm = desired_adapter_configmap(l, {a2, bad, a1, no_secret, with_secret}, {{"e", "dG9r"}});
  json list = json::parse(cm["data"]["adapters.json"].get<std::string>());
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0]["id"], "a");
  EXPECT_EQ(list[1]["source"], "hub");
  EXPECT_EQ(list[0]["source"], "url");
  EXPECT_EQ(list[0]["sha256"], std::string(64, 'f'));
  EXPECT_EQ(list[2]["token_file"], "/etc/lorax/adapter-tokens/e");
  EXPECT_EQ(desired_adapter_token_secret(l, {{"e", "dG9r"}})["data"]["e"], "dG9r");
  // Two Adapters naming one id: the first by name keeps it, whatever the listing order.
  json z = adapter("z", {{"source", "hf://o/z"}, {"adapterId", "shared"}});
  json y = adapter("y", {{"source", "hf://o/y"}, {"adapterId", "shared"}});
  json dup = json::parse(desired_adapter_configmap(l, {z, y}, {})["data"]["adapters.json"].get<std::string>());
  ASSERT_EQ(dup.size(), 1u);
  EXPECT_EQ(dup[0]["location"], "o/y");
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
