"""Every object the operator builds validates against the official Kubernetes JSON
schemas (kubernetes-validate, bundled offline), the CRDs validate as CRDs, and custom
resources validate (or are rejected) by the CRDs' own openAPIV3Schema."""
import json
import subprocess

import jsonschema
import kubernetes_validate
import pytest
import yaml

from op_crd_schema import BUILD, CRD_FILES, apply_defaults, validate_cr

K8S_VERSION = "1.35.0"


def ldep(spec, name="llama"):
    return {"apiVersion": "lorax.dev/v1alpha1", "kind": "LoraxDeployment",
            "metadata": {"name": name, "namespace": "ml", "uid": "1234", "generation": 1}, "spec": spec}


def adapter(spec, name="a1"):
    return {"apiVersion": "lorax.dev/v1alpha1", "kind": "Adapter",
            "metadata": {"name": name, "namespace": "ml", "uid": "5678", "generation": 1}, "spec": spec}


SPECS = [
    {"model": {"source": "hf://meta-llama/Llama-3.2-1B"}},
    {"model": {"source": "pvc://models/llama"}, "replicas": 3,
     "engine": {"image": "r/e:1", "dtype": "bfloat16", "numShard": 1, "maxInputLength": 100, "maxTotalTokens": 200,
                "args": ["--api-key", "x"], "modelId": "llama-3", "shutdownTimeoutSeconds": 60,
                "env": [{"name": "AWS_REGION", "value": "eu-west-1"},
                        {"name": "S3_KEY", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "k"}}}]},
     "resources": {"requests": {"cpu": "4", "memory": "16Gi"}, "limits": {"memory": 17179869184}},
     "adapters": {"maxActive": 4, "maxLoaded": 8, "cycleTimeSeconds": 1.5, "claims": ["loras"], "maxHost": 64,
                  "maxHostBytes": 8589934592,
                  "hostPaths": ["/srv/loras"], "urlAllow": ["models.internal:8443", "10.0.0.0/8"]},
     "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
         {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["h200"]}]}]}}},
     "podAnnotations": {"team": "ml"}, "priorityClassName": "inference", "imagePullSecrets": [{"name": "regcred"}],
     "service": {"type": "NodePort", "port": 8000}, "nodeSelector": {"gpu": "h100"},
     "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
     "autoscaling": {"minReplicas": 1, "maxReplicas": 4, "targetQueueSize": 5}},
    {"model": {"source": "file:///srv/models/gpt2"}, "engine": {"device": "cpu"}, "replicas": 0},
    {"model": {"source": "hf://meta-llama/Llama-3.1-8B", "revision": "v1.0", "hubEndpoint": "https://hub.internal",
               "tokenSecretRef": {"name": "hf", "key": "token"}}},
]
ADAPTERS = [
    adapter({"deploymentRef": {"name": "llama"}, "source": "hf://org/lora", "preload": True}, "a-hub"),
    adapter({"deploymentRef": {"name": "llama"}, "source": "pvc://loras/sql"}, "a-pvc"),
    adapter({"deploymentRef": {"name": "llama"}, "source": "https://h/x.tar", "sha256": "a" * 64,
             "tokenSecretRef": {"name": "t"}, "adapterId": "team/x-v1"}, "a-url"),
]


@pytest.fixture(scope="module")
def render(tmp_path_factory):
    exe = BUILD / "tests" / "operator_render"
    assert exe.exists(), f"{exe} not built"
    d = tmp_path_factory.mktemp("render")

    def run(ld, adapters=()):
        files = []
        for i, obj in enumerate([ld, *adapters]):
            p = d / f"{i}.json"
            p.write_text(json.dumps(obj))
            files.append(str(p))
        out = subprocess.run([str(exe), *files], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)
    return run


@pytest.mark.parametrize("kind", sorted(CRD_FILES))
def test_crds_are_valid_crds(kind):
    crd = yaml.safe_load(CRD_FILES[kind].read_text())
    kubernetes_validate.validate(crd, K8S_VERSION, strict=True)
    v = crd["spec"]["versions"][0]
    assert crd["spec"]["group"] == "lorax.dev" and v["name"] == "v1alpha1"
    assert "status" in v["subresources"]


def test_ldep_crd_scale_subresource_and_short_names():
    crd = yaml.safe_load(CRD_FILES["LoraxDeployment"].read_text())
    assert crd["spec"]["versions"][0]["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector"}
    assert crd["spec"]["names"]["shortNames"] == ["ldep"]
    assert yaml.safe_load(CRD_FILES["Adapter"].read_text())["spec"]["names"]["shortNames"] == ["lora"]


@pytest.mark.parametrize("i", range(len(SPECS)))
def test_desired_objects_validate(render, i):
    objs = render(ldep(SPECS[i]), ADAPTERS)
    kinds = [o["kind"] for o in objs]
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "ServiceMonitor"} <= set(kinds)
    assert ("HorizontalPodAutoscaler" in kinds) == ("autoscaling" in SPECS[i])
    for o in objs:
        if o["apiVersion"].startswith("lorax.dev/"):
            validate_cr(o)  # our CRs with the status the operator writes
        elif o["kind"] == "ServiceMonitor":
            # not a core type: kubernetes-validate has no schema for it; check the fields we rely on
            assert o["spec"]["endpoints"][0]["port"] == "http"
        else:
            kubernetes_validate.validate(o, K8S_VERSION, strict=True)
        for ref in o["metadata"].get("ownerReferences", []):
            assert ref["uid"] == "1234" and ref["controller"] is True


def test_default_spec_validates_after_defaulting():
    obj = apply_defaults(ldep({"model": {"source": "hf://o/m"}}))
    validate_cr(obj)
    assert obj["spec"]["replicas"] == 1 and obj["spec"]["engine"]["numShard"] == 1


@pytest.mark.parametrize("obj", [
    ldep({}),                                                     # missing model
    ldep({"model": {}}),                                          # missing source
    ldep({"model": {"source": "hf://o/m"}, "replicas": -1}),      # negative replicas
    ldep({"model": {"source": "s3://bucket/m"}}),                 # unknown scheme
    ldep({"model": {"source": "hf://o/m"}, "engine": {"numShard": 0}}),
    ldep({"model": {"source": "hf://o/m"}, "service": {"type": "Ingress"}}),
    ldep({"model": {"source": "hf://o/m"}, "autoscaling": {"minReplicas": 1}}),  # no maxReplicas
    adapter({"source": "hf://o/l"}),                              # no deploymentRef
    adapter({"deploymentRef": {}, "source": "hf://o/l"}),
    adapter({"deploymentRef": {"name": "x"}}),                    # no source
    adapter({"deploymentRef": {"name": "x"}, "source": "https://h/a", "sha256": "xyz"}),
    # CEL rules (x-kubernetes-validations)
    adapter({"deploymentRef": {"name": "x"}, "source": "https://h/a"}),           # https without sha256
    ldep({"model": {"source": "hf://o/m"}, "autoscaling": {"minReplicas": 5, "maxReplicas": 2}}),
    ldep({"model": {"source": "hf://o/m"}, "replicas": 9, "autoscaling": {"maxReplicas": 4}}),
    ldep({"model": {"source": "hf://o/m"}, "adapters": {"maxActive": 9, "maxLoaded": 2}}),
    ldep({"model": {"source": "hf://o/m"}, "engine": {"maxInputLength": 10, "maxTotalTokens": 10}}),
    # what the engine refuses at start: no tensor parallelism yet, float32 only on cpu
    ldep({"model": {"source": "hf://o/m"}, "engine": {"numShard": 2}}),
    ldep({"model": {"source": "hf://o/m"}, "adapters": {"maxHostBytes": -1}}),
    ldep({"model": {"source": "hf://o/m"}, "engine": {"device": "cpu", "dtype": "bfloat16"}}),
    ldep({"model": {"source": "pvc://c/m", "revision": "main"}}),               # revision is for hf:// only
    ldep({"model": {"source": "hf://o/m"}, "adapters": {"claims": ["Bad_Claim"]}}),
    ldep({"model": {"source": "hf://o/m"}, "engine": {"env": [{"value": "no name"}]}}),
    adapter({"deploymentRef": {"name": "x"}, "source": "pvc://c/a", "tokenSecretRef": {"name": "s"}}),
    adapter({"deploymentRef": {"name": "x"}, "source": "hf://o/a", "adapterId": "has space"}),
], ids=lambda o: json.dumps(o["spec"])[:60])
def test_invalid_resources_rejected(obj):
    with pytest.raises(jsonschema.ValidationError):
        validate_cr(obj, strict=False)


def test_validator_is_not_vacuous():
    # the same validator rejects a wrong type and (strict) an unknown field in a core object
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                                      "spec": {"replicas": "two"}}, K8S_VERSION, strict=True)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
                                      "spec": {"portz": []}}, K8S_VERSION, strict=True)


def test_conditions_schema_is_metav1_condition():
    """Like kubebuilder's metav1.Condition: all five fields required, reason a CamelCase word."""
    for kind in CRD_FILES:
        crd = yaml.safe_load(CRD_FILES[kind].read_text())
        item = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"][
            "conditions"]["items"]
        assert set(item["required"]) == {"type", "status", "reason", "message", "lastTransitionTime"}
    good = {"type": "Ready", "status": "True", "reason": "Loaded", "message": "", "lastTransitionTime":
            "2026-01-01T00:00:00Z"}
    base = adapter({"deploymentRef": {"name": "x"}, "source": "hf://o/a"})
    validate_cr({**base, "status": {"conditions": [good]}})
    for bad in [{k: v for k, v in good.items() if k != "reason"}, {**good, "reason": "has space"}]:
        with pytest.raises(jsonschema.ValidationError):
            validate_cr({**base, "status": {"conditions": [bad]}})
