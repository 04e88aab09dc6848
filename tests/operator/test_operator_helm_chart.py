"""helm/lorax: the chart carries the same CRDs and dashboards as the repo, and the RBAC that the real
`helm template` renders grants every API call the operator was seen making against the double, with
server-side applies that created an object counted as `create` (as the API server authorizes them),
and grants nothing the operator never did."""
import re
import subprocess

import yaml

from op_crd_schema import REPO
from op_harness import cluster, start_operator, wait_for  # noqa: F401 (fixtures)
from test_operator_adapters import adapter_ready
from test_operator_ldep import SPEC, available, spec_with_engine_port

CHART = REPO / "helm" / "lorax"


def test_chart_files_match_repo():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "lorax"
    for f in (REPO / "crds").glob("*.yaml"):
        assert (CHART / "crds" / f.name).read_bytes() == f.read_bytes(), f"{f.name} differs in the chart"
    assert (CHART / "dashboards" / "operator.json").read_bytes() == (REPO / "dashboards" / "operator.json").read_bytes()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["config"]["leaderElection"]["renewDeadlineSeconds"] < \
        values["config"]["leaderElection"]["leaseDurationSeconds"]


def rendered(helm, *set_args):
    out = subprocess.run([str(helm), "template", "lorax", str(CHART), "--namespace", "lorax-system", *set_args],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def rbac_rules(docs, kinds=("ClusterRole", "Role")):
    """Rules per namespace ("" for cluster-wide) of the operator's roles."""
    out = {}
    for d in docs:
        if d["kind"] in kinds:
            out.setdefault(d["metadata"].get("namespace", "") if d["kind"] == "Role" else "", []).extend(d["rules"])
    return out


def cluster_role_rules(helm):
    per_ns = rbac_rules(rendered(helm))
    return per_ns.get("", []) + per_ns.get("lorax-system", [])


def allowed(rules, group, resource, verb):
    return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules)


def verbs_of(req):
    if req["method"] == "GET":
        return {"watch" if req["watch"] else ("list" if not req["path_has_name"] else "get")}
    verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[req["method"]]
    # An apply that creates the object is authorized as `create` as well as `patch`.
    return {verb, "create"} if req.get("created") else {verb}


PATH = re.compile(r"^/(?:api/v1|apis/(?P<g>[^/]+)/[^/]+)(?:/namespaces/[^/]+)?/(?P<res>[^/]+)(?P<name>/[^/]+)?"
                  r"(?:/(?P<sub>[^/]+))?$")


def test_rbac_covers_every_call_the_operator_makes(cluster, start_operator, helm_bin):
    cluster.api.store.serve_service_monitors = True
    start_operator()
    spec = spec_with_engine_port(cluster, {**SPEC, "autoscaling": {"maxReplicas": 3}})
    cluster.create_ldep("m1", spec)
    wait_for(lambda: available(cluster, ready=2), 20, "m1 Available")
    cluster.create_adapter("a", {"deploymentRef": {"name": "m1"}, "source": "hf://o/a", "preload": True})
    wait_for(lambda: adapter_ready(cluster, "a", 2), 15, "adapter loaded")
    cluster.kubectl("DELETE", "adapters", "default", "a")
    wait_for(lambda: cluster.get("adapters", "a") is None, 15, "adapter removed")
    cluster.edit("loraxdeployments", "m1", lambda o: o["spec"].pop("autoscaling"))
    wait_for(lambda: cluster.get("horizontalpodautoscalers", "m1") is None, 15, "HPA removed")
    assert cluster.get("servicemonitors", "m1") is not None
    rules = cluster_role_rules(helm_bin)
    seen = set()
    for r in cluster.api.since(0, "operator"):
        m = PATH.match(r["path"])
        if not m:
            continue  # discovery
        res = m["res"] + (f"/{m['sub']}" if m["sub"] else "")
        r["path_has_name"] = bool(m["name"])
        for v in verbs_of(r):
            seen.add((m["g"] or "", res, v))
    missing = [s for s in sorted(seen) if not allowed(rules, *s)]
    assert not missing, f"the chart's RBAC lacks {missing}"
    for must in [("", "events", "create"), ("coordination.k8s.io", "leases", "update"), ("apps", "deployments", "create"),
                 ("", "services", "create"), ("autoscaling", "horizontalpodautoscalers", "delete")]:
        assert must in seen, f"the run did not exercise {must}"
    granted = {(g, res, v) for r in rules for g in r["apiGroups"] for res in r["resources"] for v in r["verbs"]}
    # Granted but not exercised by this run, each for a reason the run cannot show:
    not_in_run = set()
    extra = sorted(granted - seen - not_in_run)
    assert not extra, f"the chart grants {extra}, which the operator never used"


def test_namespaced_install_uses_roles_not_a_cluster_role(helm_bin):
    docs = rendered(helm_bin, "--set", "config.namespaces={team-a,team-b}")
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    per_ns = rbac_rules(docs)
    assert set(per_ns) == {"team-a", "team-b", "lorax-system"}
    assert allowed(per_ns["team-a"], "apps", "deployments", "create")
    assert not allowed(per_ns["team-a"], "coordination.k8s.io", "leases", "update")
    assert allowed(per_ns["lorax-system"], "coordination.k8s.io", "leases", "update")
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert {b["metadata"]["namespace"] for b in bindings} == {"team-a", "team-b", "lorax-system"}
    assert all(b["subjects"][0]["namespace"] == "lorax-system" for b in bindings)
