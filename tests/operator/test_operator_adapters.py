"""Adapters: preload on every ready engine pod (and new ones), per-pod status, finalizer unload,
validation failures."""
import urllib.parse

from op_harness import cluster, start_operator, wait_for  # noqa: F401 (fixtures)
from test_operator_ldep import available, cond, spec_with_engine_port

SPEC = {"model": {"source": "hf://org/base"}, "replicas": 2}


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
    want = {"adapter_id": "org/sql-lora", "adapter_source": "hub"}
    assert posts(cluster) == {"m1-0": [want], "m1-1": [want]}
    assert [p["state"] for p in a["status"]["pods"]] == ["Loaded", "Loaded"]
    assert "lorax.dev/adapter-unload" in a["metadata"]["finalizers"]
    wait_for(lambda: '"adapter_id":"org/sql-lora"' in cluster.get("configmaps", "m1-adapters")["data"]["adapters.json"],
             10, "adapter in the deployment's ConfigMap")
    ld = wait_for(lambda: (o := cluster.get("loraxdeployments", "m1"))["status"]["adapters"]["ready"] == 1 and o,
                  10, "ldep adapter summary")
    assert ld["status"]["adapters"] == {"total": 1, "ready": 1, "failed": 0}

    # a new engine pod gets the adapter too, and the old pods are not called again
    cluster.edit("loraxdeployments", "m1", lambda o: o["spec"].update(replicas=3))
    wait_for(lambda: adapter_ready(cluster, "sql", 3), 15, "adapter loaded on the new pod")
    assert posts(cluster) == {"m1-0": [want], "m1-1": [want], "m1-2": [want]}

    # delete: the finalizer unloads from every pod before the object goes away
    code, _ = cluster.kubectl("DELETE", "adapters", "default", "sql")
    assert code == 200
    wait_for(lambda: cluster.get("adapters", "sql") is None, 15, "adapter gone")
    quoted = urllib.parse.quote("org/sql-lora", safe="")
    assert quoted  # the engine sees the decoded id
    for pod, calls in cluster.engine_calls().items():
        assert ("DELETE", "org/sql-lora") in calls, pod
        assert not cluster.engines[pod].loaded
    wait_for(lambda: cluster.get("configmaps", "m1-adapters")["data"]["adapters.json"] == "[]", 10,
             "configmap emptied")


def test_failed_load_is_reported_and_retried(cluster, start_operator):
    start_operator()
    cluster.create_ldep("m1", spec_with_engine_port(cluster, {**SPEC, "replicas": 1}))
    wait_for(lambda: available(cluster, ready=1), 20, "m1 Available")
    cluster.engines["m1-0"].fail_loads = 1
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
    for name, reason in [("orphan", "DeploymentNotFound"), ("wrongbase", "BaseModelMismatch")]:
        c = wait_for(lambda: cond(cluster.get("adapters", name), "Failed"), 10, f"{name} Failed")
        assert c["status"] == "True" and c["reason"] == reason
    assert posts(cluster)["m1-0"] == []  # nothing loaded for invalid adapters
    # the schema rejects an adapter without deploymentRef before the operator sees it
    code, body = cluster.kubectl("POST", "adapters", "default", body={
        "apiVersion": "lorax.dev/v1alpha1", "kind": "Adapter", "metadata": {"name": "bad"},
        "spec": {"source": "hf://o/c"}})
    assert code == 422, body
