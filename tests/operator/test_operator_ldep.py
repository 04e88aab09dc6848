"""lorax-operator against the API-server double: LoraxDeployment lifecycle, drift, steady state."""
import json
import time

import kubernetes_validate

from op_harness import cluster, start_operator, wait_for  # noqa: F401 (fixtures)

SPEC = {"model": {"source": "pvc://models/llama"}, "replicas": 2, "engine": {"dtype": "bfloat16"}}
OWNED = [("deployments", "m1"), ("services", "m1"), ("configmaps", "m1-adapters"), ("poddisruptionbudgets", "m1")]


def cond(obj, typ):
    for c in (obj or {}).get("status", {}).get("conditions", []):
        if c["type"] == typ:
            return c
    return None


def available(cluster, name="m1", ready=None):
    o = cluster.get("loraxdeployments", name)
    c = cond(o, "Available")
    if not c or c["status"] != "True" or o["status"]["observedGeneration"] != o["metadata"]["generation"]:
        return None
    if ready is not None and o["status"].get("readyReplicas") != ready:
        return None
    return o


def spec_with_engine_port(cluster, spec):
    s = {**spec, "engine": {**spec.get("engine", {}), "port": cluster.engine_port}}
    return s


def test_create_builds_owned_objects_that_validate(cluster, start_operator):
    start_operator()
    ldep = cluster.create_ldep("m1", spec_with_engine_port(cluster, SPEC))
    o = wait_for(lambda: available(cluster, ready=2), 20, "m1 Available")
    assert o["status"]["replicas"] == 2
    assert o["status"]["selector"] == "app.kubernetes.io/instance=m1,app.kubernetes.io/name=lorax-engine"
    assert o["status"]["endpoint"] == "http://m1.default.svc:80"
    assert cond(o, "Degraded")["status"] == "False"
    for plural, name in OWNED:
        obj = cluster.get(plural, name)
        assert obj, f"{plural}/{name} missing"
        assert obj["metadata"]["ownerReferences"][0]["uid"] == ldep["metadata"]["uid"]
        managers = [m["manager"] for m in obj["metadata"]["managedFields"]]
        assert managers == ["lorax-operator"]  # written by server-side apply with our field manager
        clean = {k: v for k, v in obj.items() if k != "status"}
        clean["metadata"] = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
        kubernetes_validate.validate(clean, "1.30.0", strict=True)
    dep = cluster.get("deployments", "m1")
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:3] == ["serve", "--model", "/model/llama"] and "bfloat16" in args
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "example.com/lorax-engine:test"
    # Events are recorded right after the status write that the wait above saw
    wait_for(lambda: {"Created", "Available"} <= {e["reason"] for e in cluster.api.store.list("events")}, 5,
             "Created and Available events")
    assert cluster.get("horizontalpodautoscalers", "m1") is None


def test_scale_update_autoscaling_and_delete(cluster, start_operator):
    start_operator()
    cluster.create_ldep("m1", spec_with_engine_port(cluster, SPEC))
    wait_for(lambda: available(cluster, ready=2), 20, "m1 Available")
    # kubectl scale goes through the spec (the scale subresource maps to spec.replicas)
    cluster.edit("loraxdeployments", "m1", lambda o: o["spec"].update(replicas=3))
    wait_for(lambda: available(cluster, ready=3), 15, "3 ready replicas")
    assert cluster.get("deployments", "m1")["spec"]["replicas"] == 3
    cluster.edit("loraxdeployments", "m1", lambda o: o["spec"]["engine"].update(maxTotalTokens=4096))
    wait_for(lambda: "4096" in cluster.get("deployments", "m1")["spec"]["template"]["spec"]["containers"][0]["args"],
             15, "args updated")
    cluster.edit("loraxdeployments", "m1", lambda o: o["spec"].update(
        autoscaling={"minReplicas": 1, "maxReplicas": 4, "targetQueueSize": 3}))
    hpa = wait_for(lambda: cluster.get("horizontalpodautoscalers", "m1"), 15, "HPA")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "lorax.dev/v1alpha1", "kind": "LoraxDeployment",
                                             "name": "m1"}
    kubernetes_validate.validate({k: v for k, v in hpa.items() if k != "metadata"} | {
        "metadata": {"name": "m1"}}, "1.30.0", strict=True)
    cluster.edit("loraxdeployments", "m1", lambda o: o["spec"].pop("autoscaling"))
    wait_for(lambda: cluster.get("horizontalpodautoscalers", "m1") is None, 15, "HPA removed")
    code, _ = cluster.kubectl("DELETE", "loraxdeployments", "default", "m1")
    assert code == 200
    wait_for(lambda: all(cluster.get(p, n) is None for p, n in OWNED), 10, "owned objects collected")
    time.sleep(1)  # the operator must not resurrect anything
    assert all(cluster.get(p, n) is None for p, n in OWNED)


def test_drift_is_corrected(cluster, start_operator):
    start_operator()
    cluster.create_ldep("m1", spec_with_engine_port(cluster, SPEC))
    wait_for(lambda: available(cluster, ready=2), 20, "m1 Available")

    def tamper(o):
        o["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:latest"
    cluster.edit("deployments", "m1", tamper, group="apps/v1")
    wait_for(lambda: cluster.get("deployments", "m1")["spec"]["template"]["spec"]["containers"][0]["image"]
             == "example.com/lorax-engine:test", 15, "image restored")


def test_steady_state_makes_no_writes(cluster, start_operator):
    # resync every second: reconciles keep running, yet nothing is written
    op = start_operator(resyncSeconds=1)
    # quantities the server canonicalizes (1024Mi -> 1Gi, 1000m -> 1) must not look like drift
    spec = {**SPEC, "resources": {"requests": {"cpu": "1000m", "memory": "1024Mi"}, "limits": {"memory": 2147483648}}}
    cluster.create_ldep("m1", spec_with_engine_port(cluster, spec))
    wait_for(lambda: available(cluster, ready=2), 20, "m1 Available")
    cluster.create_adapter("a1", {"deploymentRef": {"name": "m1"}, "source": "hf://o/a1", "preload": True})
    wait_for(lambda: (cond(cluster.get("adapters", "a1"), "Ready") or {}).get("status") == "True", 15, "a1 Ready")
    wait_for(lambda: cluster.get("loraxdeployments", "m1")["status"]["adapters"]["ready"] == 1, 10, "summary")
    time.sleep(1.5)  # let in-flight reconciles settle
    engine_calls = sum(len(c) for c in cluster.engine_calls().values())
    mark = cluster.api.mark()
    before = reconciles(op.metrics())
    time.sleep(4)
    after = reconciles(op.metrics())
    calls = cluster.api.since(mark, token="operator")
    writes = cluster.api.writes_since(mark, token="operator")
    lease_writes = [r for r in cluster.api.writes_since(mark, token="operator", include_leases=True)
                    if "/leases" in r["path"]]
    limits = cluster.get("deployments", "m1")["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert limits["requests"]["memory"] == "1Gi" and limits["limits"]["memory"] == "2Gi"  # the double canonicalized
    n = after["loraxdeployment"] - before["loraxdeployment"]
    assert n >= 3, "resync should have reconciled"
    assert writes == [], writes
    assert after["adapter"] - before["adapter"] >= 3
    assert sum(len(c) for c in cluster.engine_calls().values()) == engine_calls  # no reloads either
    assert lease_writes, "the leader keeps renewing its lease"
    reads = [r for r in calls if r["method"] == "GET" and not r["watch"] and "/leases" not in r["path"]]
    per = {}
    for r in reads:
        key = r["path"].split("/")[-2] + "/" + r["path"].split("/")[-1]
        per[key] = per.get(key, 0) + 1
    print(f"\nsteady state over 4s: {n} LoraxDeployment reconciles, "
          f"{after['adapter'] - before['adapter']} Adapter reconciles, {len(writes)} writes, "
          f"{len(lease_writes)} lease renewals, reads: {per}")


def reconciles(text):
    out = {"loraxdeployment": 0, "adapter": 0}
    for line in text.splitlines():
        if line.startswith("lorax_operator_reconcile_total{"):
            ctl = line.split('controller="')[1].split('"')[0]
            out[ctl] = out.get(ctl, 0) + float(line.rsplit(" ", 1)[1])
    return out


def test_server_side_apply_ownership(cluster, start_operator):
    start_operator()
    cluster.create_ldep("m1", spec_with_engine_port(cluster, SPEC))
    wait_for(lambda: available(cluster, ready=2), 20, "m1 Available")
    url = f"{cluster.api.url}/apis/apps/v1/namespaces/default/deployments/m1"
    dep = cluster.get("deployments", "m1")
    theirs = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "m1", "namespace": "default"},
              "spec": {"template": {"spec": {"containers": [{"name": "engine", "image": "other:1"}]}}}}
    hdr = {"Content-Type": "application/apply-patch+yaml", "Authorization": "Bearer kubectl"}
    # another manager may not take fields lorax-operator owns without force...
    r = cluster.http.patch(url + "?fieldManager=someone", json=theirs, headers=hdr, timeout=5)
    assert r.status_code == 409 and r.json()["reason"] == "Conflict"
    assert cluster.get("deployments", "m1")["metadata"]["resourceVersion"] == dep["metadata"]["resourceVersion"]
    # ...with force it does, and the operator (also forcing) takes them back
    r = cluster.http.patch(url + "?fieldManager=someone&force=true", json=theirs, headers=hdr, timeout=5)
    assert r.status_code == 200
    restored = wait_for(lambda: (d := cluster.get("deployments", "m1"))["spec"]["template"]["spec"]["containers"][0]
                        .get("image") == "example.com/lorax-engine:test" and d, 15, "operator re-applied")
    owners = {m["manager"]: m["fieldsV1"] for m in restored["metadata"]["managedFields"]}
    assert "spec.template.spec.containers" in owners["lorax-operator"]
    assert "spec.template.spec.containers" not in owners.get("someone", {})


def test_watches_only_configured_namespaces(cluster, start_operator):
    start_operator(namespaces=["team-a"])
    cluster.create_ldep("m1", spec_with_engine_port(cluster, SPEC), ns="team-a")
    cluster.create_ldep("m2", spec_with_engine_port(cluster, SPEC), ns="team-b")
    wait_for(lambda: cluster.api.store.get("deployments", "team-a", "m1"), 20, "team-a reconciled")
    time.sleep(1)
    assert cluster.api.store.get("deployments", "team-b", "m2") is None
    paths = {r["path"] for r in cluster.api.since(0, "operator") if r["watch"]}
    assert paths and all("/namespaces/team-a/" in p for p in paths), paths  # no cluster-wide watch


def test_spec_the_engine_would_refuse_is_rejected_or_reported(cluster, start_operator):
    """numShard > 1 used to pass the CRD and ask for that many GPUs for an engine that refuses to start: now the
    CRD's CEL rule rejects it, and an object stored before that rule is reported Degraded with nothing rolled out."""
    start_operator()
    code, body = cluster.kubectl("POST", "loraxdeployments", "default", body={
        "apiVersion": "lorax.dev/v1alpha1", "kind": "LoraxDeployment", "metadata": {"name": "tp"},
        "spec": spec_with_engine_port(cluster, {"model": {"source": "hf://o/m"}, "engine": {"numShard": 2}})})
    assert code == 422 and "tensor parallelism" in json.dumps(body), body
    old = {"apiVersion": "lorax.dev/v1alpha1", "kind": "LoraxDeployment",
           "metadata": {"name": "old", "namespace": "default", "uid": "u-old", "generation": 1,
                        "creationTimestamp": "2026-01-01T00:00:00Z"},
           "spec": {"model": {"source": "hf://o/m"}, "replicas": 1,
                    "engine": {"numShard": 4, "port": cluster.engine_port}}}
    with cluster.api.store.cond:  # stored before the CEL rule existed: no validation on the way in
        cluster.api.store._put("loraxdeployments", old, "ADDED")
    c = wait_for(lambda: (x := cond(cluster.get("loraxdeployments", "old"), "Degraded")) and x["status"] == "True" and x,
                 15, "Degraded")
    assert "tensor parallelism" in c["message"]
    assert cluster.get("deployments", "old") is None
