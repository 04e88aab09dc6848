"""helm/lorax: the chart carries the same CRDs and dashboards as the repo, and its ClusterRole
grants every API call the operator was seen making against the double (nothing more is needed).
helm itself is not installed here, so templates are read with their {{ }} actions blanked."""
import re

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


def cluster_role_rules():
    text = re.sub(r"\{\{-?.*?-?\}\}", "x", (CHART / "templates" / "rbac.yaml").read_text())
    docs = [d for d in yaml.safe_load_all(text) if d]
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    return role["rules"]


def allowed(rules, group, resource, verb):
    return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules)


def verb_of(req):
    if req["method"] == "GET":
        return "watch" if req["watch"] else ("list" if not req["path_has_name"] else "get")
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[req["method"]]


PATH = re.compile(r"^/(?:api/v1|apis/(?P<g>[^/]+)/[^/]+)(?:/namespaces/[^/]+)?/(?P<res>[^/]+)(?P<name>/[^/]+)?"
                  r"(?:/(?P<sub>[^/]+))?$")


def test_rbac_covers_every_call_the_operator_makes(cluster, start_operator):
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
    rules = cluster_role_rules()
    seen = set()
    for r in cluster.api.since(0, "operator"):
        m = PATH.match(r["path"])
        if not m:
            continue  # discovery
        res = m["res"] + (f"/{m['sub']}" if m["sub"] else "")
        r["path_has_name"] = bool(m["name"])
        seen.add((m["g"] or "", res, verb_of(r)))
    missing = [s for s in sorted(seen) if not allowed(rules, *s)]
    assert not missing, f"ClusterRole lacks {missing}"
    assert ("", "events", "create") in seen and ("coordination.k8s.io", "leases", "update") in seen
