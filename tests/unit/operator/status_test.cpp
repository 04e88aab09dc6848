// Status conditions follow the Kubernetes API conventions (metav1.Condition):
// lastTransitionTime changes only when status flips.
#include <gtest/gtest.h>

#include "controllers/status.h"

using namespace lorax::op;

static json ldep(int replicas) {
  return {{"apiVersion", "lorax.dev/v1alpha1"}, {"kind", "LoraxDeployment"},
          {"metadata", {{"name", "m"}, {"namespace", "ns"}, {"generation", 2}}},
          {"spec", {{"model", {{"source", "hf://o/m"}}}, {"replicas", replicas}}}};
}

static json dep(int replicas, int ready) {
  return {{"metadata", {{"generation", 1}}},
          {"status", {{"observedGeneration", 1}, {"replicas", replicas}, {"readyReplicas", ready},
                      {"updatedReplicas", replicas}}}};
}

static json cond(const json& st, const std::string& type) {
  for (auto& c : st["conditions"])
    if (c["type"] == type) return c;
  return nullptr;
}

TEST(LdepStatus, AvailableWhenAllReady) {
  json st = ldep_status(ldep(2), dep(2, 2), {}, "", "T1");
  EXPECT_EQ(cond(st, "Available")["status"], "True");
  EXPECT_EQ(cond(st, "Progressing")["status"], "False");
  EXPECT_EQ(cond(st, "Degraded")["status"], "False");
  EXPECT_EQ(st["observedGeneration"], 2);
  EXPECT_EQ(st["readyReplicas"], 2);
  EXPECT_EQ(st["selector"], "app.kubernetes.io/instance=m,app.kubernetes.io/name=lorax-engine");
  EXPECT_EQ(st["endpoint"], "http://m.ns.svc:80");
}

TEST(LdepStatus, TransitionTimeMovesOnlyOnFlip) {
  json l = ldep(2);
  l["status"] = ldep_status(l, dep(2, 1), {}, "", "T1");
  EXPECT_EQ(cond(l["status"], "Available")["status"], "False");
  json same = ldep_status(l, dep(2, 1), {}, "", "T2");
  EXPECT_EQ(same, l["status"]);  // nothing changed: identical, so no write
  json up = ldep_status(l, dep(2, 2), {}, "", "T3");
  EXPECT_EQ(cond(up, "Available")["lastTransitionTime"], "T3");
  EXPECT_EQ(cond(up, "Degraded")["lastTransitionTime"], "T1");
}

TEST(LdepStatus, DegradedOnErrorAndMissingDeployment) {
  json st = ldep_status(ldep(1), nullptr, {}, "apply failed", "T");
  EXPECT_EQ(cond(st, "Degraded")["status"], "True");
  EXPECT_EQ(cond(st, "Progressing")["status"], "True");
  EXPECT_EQ(cond(ldep_status(ldep(0), nullptr, {}, "", "T"), "Available")["reason"], "ScaledToZero");
}

TEST(AdapterStatus, PreloadReadyOnlyWhenAllPodsLoaded) {
  json a = {{"metadata", {{"generation", 1}}}, {"spec", {{"preload", true}}}};
  json st = adapter_status(a, "", "", {{"p1", {"Loaded", ""}}, {"p2", {"Failed", "404"}}}, "T");
  EXPECT_EQ(cond(st, "Ready")["status"], "False");
  EXPECT_EQ(cond(st, "Failed")["status"], "True");
  EXPECT_EQ(st["loadedPods"], 1);
  st = adapter_status(a, "", "", {{"p1", {"Loaded", ""}}, {"p2", {"Loaded", ""}}}, "T");
  EXPECT_EQ(cond(st, "Ready")["status"], "True");
  st = adapter_status(a, "DeploymentNotFound", "no such deployment", {}, "T");
  EXPECT_EQ(cond(st, "Failed")["reason"], "DeploymentNotFound");
}
