"""The operator's /metrics passes promtool and the prometheus_client parser; every series the
Grafana dashboard queries exists there, and every dashboard query parses as PromQL (promtool)."""
import json
import re
import shutil
import subprocess
import urllib.request

import yaml
from prometheus_client.parser import text_string_to_metric_families

from op_crd_schema import REPO
from op_harness import cluster, start_operator, wait_for  # noqa: F401 (fixtures)
from test_operator_ldep import SPEC, available, spec_with_engine_port

DASHBOARD = REPO / "dashboards" / "operator.json"


def exprs():
    d = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in d["panels"] for t in p["targets"]]


def test_operator_metrics_and_dashboard(cluster, start_operator, tmp_path):
    op = start_operator()
    cluster.create_ldep("m1", spec_with_engine_port(cluster, SPEC))
    wait_for(lambda: available(cluster, ready=2), 20, "m1 Available")
    # the reconcile that reported Available may still be emitting its Event: wait for its count
    def counted():
        t = op.metrics()
        return t if 'lorax_operator_reconcile_total{controller="loraxdeployment"' in t else None
    text = wait_for(counted, 10, "reconcile counted")
    res = subprocess.run([shutil.which("promtool"), "check", "metrics"], input=text, capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr
    samples = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    assert "lorax_operator_leader" in samples
    for e in exprs():
        for name in re.findall(r"\blorax_operator_[a-z_]+", e):
            assert name in samples, f"dashboard queries {name}, which the operator does not export"
    with urllib.request.urlopen(f"http://127.0.0.1:{op.port}/readyz", timeout=2) as r:
        assert r.status == 200


def test_dashboard_queries_are_valid_promql(tmp_path):
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:q{i}", "expr": e.replace("$job", ".*")} for i, e in enumerate(exprs())]}]}
    f = tmp_path / "rules.yaml"
    f.write_text(yaml.safe_dump(rules))
    res = subprocess.run([shutil.which("promtool"), "check", "rules", str(f)], capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr
