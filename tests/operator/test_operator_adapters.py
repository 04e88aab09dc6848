"""Adapters: every engine pod knows an Adapter by its name (the registry ConfigMap), preload on every ready pod
(and new ones), per-pod status (Ready only when every ready pod reports the id), finalizer unload, validation
failures; pvc:// and file:// adapters must be on the deployment's adapter volumes and never change the pod template;
tokens go to the pods through the deployment's token Secret."""
import base64
import json
import urllib.parse

from op_harness import cluster, start_operator, wait_for  # noqa: F401 (fixtures)
from test_operator_ldep import available, cond, spec_with_engine_port

SPEC = {"model": {"source": "hf://org/base"}, "replicas": 2}


def registry(cluster, ldep="m1"):
    cm = cluster.get("configmaps", f"{ldep}-adapters")
    return json.loads(cm["data"]["adapters.json"]) if cm else None


def posts(cluster):
    return {pod: [c[1] for c in calls if c[0] == "POST"] for pod, calls in cluster.engine_calls().items()}


def adapter_ready(cluster, name, loaded):
    a = cluster.get("adapters", name)
    c = cond(a, "Ready")
    return a if c and c["status"] == "True" and a["status"].get("loadedPods") == loaded else None


def test_preload_on_all_pods_new_pods_and_unload_on_delete(cluster, start_operator):
    start_operator()
    cluster.create_ldep("m1", spec_with_engine_port(cluster, SPEC))
    wait_for(lambda: available(cluster, ready=2), 20, "m1 Available")
    cluster.create_adapter("sql", {"deploymentRef": {"name": "m1"}, "source": "hf://org/sql-lora", "preload": True})
    a = wait_for(lambda: adapter_ready(cluster, "sql", 2), 15, "adapter loaded on 2 pods")
    want = {"adapter_id": "sql"}  # the Adapter's name; the pods' registry says it loads from hub org/sql-lora
    assert posts(cluster) == {"m1-0": [want], "m1-1": [want]}
    assert [p["state"] for p in a["status"]["pods"]] == ["Loaded", "Loaded"]
    assert "lorax.dev/adapter-unload" in a["metadata"]["finalizers"]
    assert registry(cluster) == [{"id": "sql", "source": "hub", "location": "org/sql-lora", "preload": True,
                                  "generation": 1}]
    ld = wait_for(lambda: (o := cluster.get("loraxdeployments", "m1"))["status"]["adapters"]["ready"] == 1 and o,
                  10, "ldep adapter summary")
    assert ld["status"]["adapters"] == {"total": 1, "ready": 1, "failed": 0}

    # a new engine pod gets the adapter too, and the old pods are not called again
    cluster.edit("loraxdeployments", "m1", lambda o: o["spec"].update(replicas=3))
    wait_for(lambda: adapter_ready(cluster, "sql", 3), 15, "adapter loaded on the new pod")
    assert posts(cluster) == {"m1-0": [want], "m1-1": [want], "m1-2": [want]}

    # a new source: each pod is asked to load again only once its registry holds the new generation
    lagging = cluster.engines["m1-2"]
    lagging.registry = lambda: {k: {**v, "generation": 1, "location": "org/sql-lora"}
                                for k, v in cluster.registry_of("m1-2").items()}
    cluster.edit("adapters", "sql", lambda o: o["spec"].update(source="hf://org/sql-lora-v2"))
    a = wait_for(lambda: (x := cluster.get("adapters", "sql")) and x["status"]["observedGeneration"] == 2 and
                 [p["state"] for p in x["status"]["pods"]] == ["Loaded", "Loaded", "Pending"] and x, 15,
                 "two pods on v2, one pending")
    assert cond(a, "Ready")["status"] == "False"
    assert {e.loaded_from["sql"] for e in cluster.engines.values()} == {"org/sql-lora-v2", "org/sql-lora"}
    lagging.registry = lambda: cluster.registry_of("m1-2")
    wait_for(lambda: adapter_ready(cluster, "sql", 3), 15, "all pods on v2")
    assert {e.loaded_from["sql"] for e in cluster.engines.values()} == {"org/sql-lora-v2"}
    # delete: the finalizer unloads from every pod before the object goes away
    code, _ = cluster.kubectl("DELETE", "adapters", "default", "sql")
    assert code == 200
    wait_for(lambda: cluster.get("adapters", "sql") is None, 15, "adapter gone")
    for pod, calls in cluster.engine_calls().items():
        assert ("DELETE", "sql") in calls, pod
        assert not cluster.engines[pod].loaded
    wait_for(lambda: cluster.get("configmaps", "m1-adapters")["data"]["adapters.json"] == "[]", 10,
             "configmap emptied")


def test_failed_load_is_reported_and_retried(cluster, start_operator):
    start_operator()
    cluster.create_ldep("m1", spec_with_engine_port(cluster, {**SPEC, "replicas": 1}))
    wait_for(lambda: available(cluster, ready=1), 20, "m1 Available")
    cluster.engines["m1-0"].fail_loads = 1
    cluster.edit("loraxdeployments", "m1", lambda o: o["spec"].update(adapters={"hostPaths": ["/loras"]}))
    wait_for(lambda: available(cluster, ready=1), 20, "m1 Available again")
    cluster.create_adapter("x", {"deploymentRef": {"name": "m1"}, "source": "file:///loras/x", "preload": True})
    wait_for(lambda: adapter_ready(cluster, "x", 1), 15, "loaded after a retry")
    # one failure, then success; a retry already queued may load once more from a cache that has not
    # yet seen the Loaded status (loads are idempotent on the engine)
    assert 2 <= len(posts(cluster)["m1-0"]) <= 3
    failed = [e for e in cluster.api.store.list("events") if e["reason"] == "LoadFailed"]
    assert failed and "HTTP 422" in failed[0]["message"]


def test_invalid_adapters_fail_with_reason(cluster, start_operator):
    start_operator()
    cluster.create_ldep("m1", spec_with_engine_port(cluster, {**SPEC, "replicas": 1}))
    wait_for(lambda: available(cluster, ready=1), 20, "m1 Available")
    cluster.create_adapter("orphan", {"deploymentRef": {"name": "nope"}, "source": "hf://o/a"})
    cluster.create_adapter("wrongbase", {"deploymentRef": {"name": "m1"}, "source": "hf://o/b",
                                         "baseModel": "hf://other/model", "preload": True})
    cluster.create_adapter("elsewhere", {"deploymentRef": {"name": "m1"}, "source": "pvc://other-claim/a"})
    cluster.create_adapter("hostfile", {"deploymentRef": {"name": "m1"}, "source": "file:///etc/a"})
    cluster.create_adapter("nosecret", {"deploymentRef": {"name": "m1"}, "source": "hf://o/p",
                                        "tokenSecretRef": {"name": "missing"}})
    cluster.create_adapter("dup-a", {"deploymentRef": {"name": "m1"}, "source": "hf://o/a", "adapterId": "same"})
    cluster.create_adapter("dup-b", {"deploymentRef": {"name": "m1"}, "source": "hf://o/b", "adapterId": "same"})
    for name, reason in [("orphan", "DeploymentNotFound"), ("wrongbase", "BaseModelMismatch"),
                         ("elsewhere", "NotMounted"), ("hostfile", "NotMounted"), ("nosecret", "SecretNotFound"),
                         ("dup-b", "DuplicateId")]:
        c = wait_for(lambda: cond(cluster.get("adapters", name), "Failed"), 10, f"{name} Failed")
        assert c["status"] == "True" and c["reason"] == reason
    assert posts(cluster)["m1-0"] == []  # nothing loaded for invalid adapters
    # no pod is told about them; of the two Adapters naming "same", the first by name keeps it
    wait_for(lambda: registry(cluster) == [{"id": "same", "source": "hub", "location": "o/a", "preload": False,
                                            "generation": 1}], 10, "registry with dup-a only")
    assert cond(cluster.get("adapters", "elsewhere"), "Ready")["status"] == "False"
    # the schema rejects an adapter without deploymentRef before the operator sees it
    code, body = cluster.kubectl("POST", "adapters", "default", body={
        "apiVersion": "lorax.dev/v1alpha1", "kind": "Adapter", "metadata": {"name": "bad"},
        "spec": {"source": "hf://o/c"}})
    assert code == 422, body


def test_every_adapter_by_name_on_every_pod_without_restarts(cluster, start_operator):
    """The issue's probes: a file:// Adapter said Ready while the engine refused it; a pvc:// one changed the pod
    template (restarting every pod) and was usable only by its path; the CR name was no usable id; an https://
    Adapter's sha256 never reached the pods."""
    start_operator()
    spec = {**SPEC, "adapters": {"claims": ["loras"], "hostPaths": ["/srv/loras"]}}
    cluster.create_ldep("m1", spec_with_engine_port(cluster, spec))
    wait_for(lambda: available(cluster, ready=2), 20, "m1 Available")
    template = cluster.get("deployments", "m1")["spec"]["template"]
    sha = "ab" * 32
    cluster.api.store.client_write("secrets", {"apiVersion": "v1", "kind": "Secret",
                                               "metadata": {"name": "hub-token", "namespace": "default"},
                                               "data": {"token": base64.b64encode(b"hf_abc").decode()}})
    cluster.create_adapter("from-pvc", {"deploymentRef": {"name": "m1"}, "source": "pvc://loras/team/a"})
    cluster.create_adapter("from-file", {"deploymentRef": {"name": "m1"}, "source": "file:///srv/loras/b"})
    cluster.create_adapter("from-url", {"deploymentRef": {"name": "m1"}, "source": "https://h.example/c/",
                                        "sha256": sha, "preload": True})
    cluster.create_adapter("private", {"deploymentRef": {"name": "m1"}, "source": "hf://org/private",
                                       "adapterId": "org/private-v2", "tokenSecretRef": {"name": "hub-token"}})
    for name in ["from-pvc", "from-file", "private"]:
        a = wait_for(lambda: (x := cluster.get("adapters", name)) and cond(x, "Ready")["status"] == "True" and x,
                     15, f"{name} Ready")
        assert [p["state"] for p in a["status"]["pods"]] == ["Registered", "Registered"]
    wait_for(lambda: adapter_ready(cluster, "from-url", 2), 15, "from-url loaded")
    entries = {e["id"]: e for e in registry(cluster)}
    assert entries["from-pvc"] == {"id": "from-pvc", "source": "local", "location": "/adapters/loras/team/a",
                                   "preload": False, "generation": 1}
    assert entries["from-file"]["location"] == "/srv/loras/b"
    assert entries["from-url"]["sha256"] == sha and entries["from-url"]["location"] == "https://h.example/c/"
    assert entries["org/private-v2"]["token_file"] == "/etc/lorax/adapter-tokens/private"
    secret = cluster.get("secrets", "m1-adapter-tokens")
    assert base64.b64decode(secret["data"]["private"]) == b"hf_abc"
    # every pod was asked about the id, the name clients use
    for pod, calls in cluster.engine_calls().items():
        assert {("GET", "from-pvc"), ("GET", "org/private-v2")} <= {c for c in calls if c[0] == "GET"}, pod
    assert cluster.get("deployments", "m1")["spec"]["template"] == template, "adding Adapters restarted the pods"
    mounts = {m["mountPath"] for m in template["spec"]["containers"][0]["volumeMounts"]}
    assert {"/adapters/loras", "/srv/loras", "/etc/lorax/adapters", "/etc/lorax/adapter-tokens"} <= mounts
    # a deleted Adapter leaves the registry and is unloaded even where it was only loaded on first use
    cluster.engines["m1-0"].loaded.add("from-pvc")
    code, _ = cluster.kubectl("DELETE", "adapters", "default", "from-pvc")
    assert code == 200
    wait_for(lambda: cluster.get("adapters", "from-pvc") is None, 15, "from-pvc gone")
    assert ("DELETE", "from-pvc") in cluster.engine_calls()["m1-0"] and "from-pvc" not in cluster.engines["m1-0"].loaded
    wait_for(lambda: "from-pvc" not in {e["id"] for e in registry(cluster)}, 10, "from-pvc out of the registry")


def test_ready_waits_until_every_pod_sees_the_registry(cluster, start_operator):
    start_operator()
    cluster.create_ldep("m1", spec_with_engine_port(cluster, SPEC))
    wait_for(lambda: available(cluster, ready=2), 20, "m1 Available")
    lagging = cluster.engines["m1-1"]
    lagging.registry = dict  # kubelet has not synced this pod's ConfigMap volume yet
    cluster.create_adapter("late", {"deploymentRef": {"name": "m1"}, "source": "hf://o/late"})
    a = wait_for(lambda: (x := cluster.get("adapters", "late")) and
                 [p["state"] for p in x["status"].get("pods", [])] == ["Registered", "Pending"] and x,
                 15, "registered on the synced pod, pending on the other")
    assert cond(a, "Ready")["status"] == "False"
    lagging.registry = lambda: cluster.registry_of("m1-1")
    wait_for(lambda: cond(cluster.get("adapters", "late"), "Ready")["status"] == "True", 15, "Ready once synced")
