"""Dropped watches, 410 Gone, write conflicts, leader election, bad input."""
import signal
import subprocess
import time

from op_harness import cluster, start_operator, wait_for  # noqa: F401 (fixtures)
from test_operator_ldep import SPEC, available, spec_with_engine_port


def lists(cluster, mark, plural):
    return [r for r in cluster.api.since(mark, "operator")
            if r["method"] == "GET" and not r["watch"] and r["path"].endswith("/" + plural)]


def test_dropped_watch_resumes_without_relist(cluster, start_operator):
    start_operator()
    cluster.create_ldep("m1", spec_with_engine_port(cluster, SPEC))
    wait_for(lambda: available(cluster, ready=2), 20, "m1 Available")
    mark = cluster.api.mark()
    cluster.api.drop_watches()  # streams cut mid-way
    cluster.edit("loraxdeployments", "m1", lambda o: o["spec"].update(replicas=1))
    wait_for(lambda: available(cluster, ready=1), 15, "change seen after reconnect")
    rewatch = [r for r in cluster.api.since(mark, "operator") if r["watch"] and "loraxdeployments" in r["path"]]
    assert rewatch and all(r["query"]["resourceVersion"] != "" for r in rewatch)
    assert rewatch[0]["query"]["allowWatchBookmarks"] == "true"
    assert lists(cluster, mark, "loraxdeployments") == []  # resumed from its resourceVersion


def test_410_gone_relists(cluster, start_operator):
    start_operator()
    cluster.create_ldep("m1", spec_with_engine_port(cluster, SPEC))
    wait_for(lambda: available(cluster, ready=2), 20, "m1 Available")
    mark = cluster.api.mark()
    cluster.api.store.compact()  # history gone: resuming watches get 410
    cluster.api.drop_watches()
    cluster.edit("loraxdeployments", "m1", lambda o: o["spec"].update(replicas=3))
    wait_for(lambda: available(cluster, ready=3), 15, "change seen after relist")
    assert lists(cluster, mark, "loraxdeployments"), "expected a relist after 410"


def test_bookmarks_advance_resource_version(cluster, start_operator):
    start_operator()
    cluster.create_ldep("m1", spec_with_engine_port(cluster, SPEC))
    wait_for(lambda: available(cluster, ready=2), 20, "m1 Available")
    # unrelated writes move the global resourceVersion; bookmarks carry it to the adapter watch
    rv_before = cluster.api.store.rv
    for i in range(3):
        cluster.kubectl("POST", "configmaps", "default", group="v1",
                        body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"x{i}"}})
    time.sleep(2.5)  # > bookmark interval
    mark = cluster.api.mark()
    cluster.api.store.compact()
    cluster.api.drop_watches()
    time.sleep(1)
    # no Adapter exists, so only bookmarks can have moved the adapters watch past the ConfigMap writes
    rewatch = wait_for(lambda: [r for r in cluster.api.since(mark, "operator")
                                if r["watch"] and r["path"].endswith("/adapters")], 5, "adapters re-watch")
    assert int(rewatch[0]["query"]["resourceVersion"]) >= rv_before + 3


def test_status_conflict_is_retried(cluster, start_operator):
    path = "/apis/lorax.dev/v1alpha1/namespaces/default/loraxdeployments/m1/status"
    cluster.api.store.inject_conflict("PUT", path, count=2)
    start_operator()
    cluster.create_ldep("m1", spec_with_engine_port(cluster, SPEC))
    wait_for(lambda: available(cluster, ready=2), 20, "m1 Available despite conflicts")
    def codes():
        return [r["code"] for r in cluster.api.since(0) if r["method"] == "PUT" and r["path"] == path]
    wait_for(lambda: 200 in codes(), 5, "a successful status PUT in the log")  # logged after the reply
    assert codes()[:2] == [409, 409]


def test_stale_update_gets_409_from_the_double(cluster):
    # guards the double itself: a PUT with an old resourceVersion must conflict
    cluster.create_ldep("m1", {"model": {"source": "hf://o/m"}})
    _, obj = cluster.kubectl("GET", "loraxdeployments", "default", "m1")
    cluster.edit("loraxdeployments", "m1", lambda o: o["spec"].update(replicas=2))
    code, body = cluster.kubectl("PUT", "loraxdeployments", "default", "m1", obj)
    assert code == 409 and body["reason"] == "Conflict"


def test_two_replicas_one_leader(cluster, start_operator):
    a = start_operator(token="op-a")
    wait_for(lambda: (cluster.get("leases", "lorax-operator") or {}).get("spec", {}).get("holderIdentity") == "op-a",
             10, "op-a leads")
    b = start_operator(token="op-b")
    cluster.create_ldep("m1", spec_with_engine_port(cluster, SPEC))
    wait_for(lambda: available(cluster, ready=2), 20, "m1 Available")
    time.sleep(1)
    assert cluster.api.writes_since(0, "op-a")
    assert cluster.api.writes_since(0, "op-b", include_leases=False) == []  # the standby writes nothing
    assert [r for r in cluster.api.since(0, "op-b") if r["watch"]] == []    # nor watches anything
    a.stop(signal.SIGKILL)  # no graceful release: b must wait for the lease to expire
    t0 = time.monotonic()
    wait_for(lambda: cluster.get("leases", "lorax-operator")["spec"]["holderIdentity"] == "op-b", 15, "op-b takes over")
    took = time.monotonic() - t0
    assert 2.0 <= took <= 8.0, took  # leaseDurationSeconds=3 measured on b's clock
    assert cluster.get("leases", "lorax-operator")["spec"]["leaseTransitions"] == 1
    cluster.edit("loraxdeployments", "m1", lambda o: o["spec"].update(replicas=1))
    wait_for(lambda: available(cluster, ready=1), 15, "new leader reconciles")


def test_graceful_stop_releases_lease(cluster, start_operator):
    a = start_operator(token="op-a")
    wait_for(lambda: (cluster.get("leases", "lorax-operator") or {}).get("spec", {}).get("holderIdentity") == "op-a",
             10, "op-a leads")
    a.stop()
    assert a.proc.returncode == 0
    assert cluster.get("leases", "lorax-operator")["spec"]["holderIdentity"] == ""


def test_bad_input_gives_one_line_errors(operator_bin, tmp_path):
    r = subprocess.run([str(operator_bin), "--bogus"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "unknown" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("workers: [1, 2\n")
    r = subprocess.run([str(operator_bin), "--config", str(bad)], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
    bad.write_text("workers: lots\n")
    r = subprocess.run([str(operator_bin), "--config", str(bad)], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and "workers" in r.stderr
    r = subprocess.run([str(operator_bin), "--kubeconfig", str(tmp_path / "missing")], capture_output=True, text=True,
                       timeout=10, env={"PATH": "/usr/bin"})
    assert r.returncode == 1 and r.stderr.startswith("error: ")
    kc = tmp_path / "kc"
    kc.write_text("apiVersion: v1\nkind: Config\ncurrent-context: nope\ncontexts: []\n")
    r = subprocess.run([str(operator_bin), "--kubeconfig", str(kc)], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and "context 'nope' not found" in r.stderr
