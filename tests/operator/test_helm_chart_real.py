"""helm/lorax with the real helm v4 (.venv/bin/helm, from scripts/install-kube-tools): lint, render with several
value sets, every rendered object against the Kubernetes 1.35 JSON schemas (kubernetes-validate, strict), the
values schema rejecting bad values, Pod Security "restricted" on the operator pod, the engine image default,
NOTES.txt (with its example resources checked against the CRDs), the PodDisruptionBudget, the prometheus-adapter
rule of the README, and dashboards/engine.json: valid PromQL (promtool) querying only series that a live
`lorax-engine serve` on models/demo exports."""
import importlib.util
import json
import re
import shutil
import subprocess
import sys

import jsonschema
import kubernetes_validate
import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from op_crd_schema import CRD_FILES, REPO, validate_cr

CHART = REPO / "helm" / "lorax"
CHART_META = yaml.safe_load((CHART / "Chart.yaml").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
K8S = "1.35"
RELEASE, NAMESPACE = "lx", "lorax-system"
ENGINE_DASHBOARD = REPO / "dashboards" / "engine.json"

# name -> extra helm arguments; what each one must change is checked below from the rendered objects
VALUE_SETS = {
    "defaults": [],
    "replicas-2": ["--set", "replicaCount=2"],
    "service-monitor": ["--set", "serviceMonitor.enabled=true"],
    "namespaces": ["--set", "config.namespaces={a,b}"],
    "no-dashboards": ["--set", "dashboards.enabled=false"],
    "pdb-min-available": ["--set", "replicaCount=3", "--set", "podDisruptionBudget.minAvailable=50%"],
    "engine-image": ["--set", "config.engineImage=registry.example/lorax-engine:9.9"],
}


@pytest.fixture(scope="module")
def helm(helm_bin, tmp_path_factory):
    """Runs helm offline: its own config/cache/data dirs, and a kubeconfig path that does not exist."""
    home = tmp_path_factory.mktemp("helm-home")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "KUBECONFIG": str(home / "no-kubeconfig"),
           "HELM_CONFIG_HOME": str(home / "config"), "HELM_CACHE_HOME": str(home / "cache"),
           "HELM_DATA_HOME": str(home / "data")}

    def run(*args, check=True):
        r = subprocess.run([str(helm_bin), *args], capture_output=True, text=True, timeout=60, env=env, cwd=home)
        if check:
            assert r.returncode == 0, f"helm {' '.join(args)}: {r.stdout}{r.stderr}"
        return r
    return run


@pytest.fixture(scope="module")
def render(helm):
    cache = {}

    def rendered(name):
        if name not in cache:
            out = helm("template", RELEASE, str(CHART), "-n", NAMESPACE, "--include-crds", *VALUE_SETS[name]).stdout
            cache[name] = [d for d in yaml.safe_load_all(out) if d]
        return cache[name]
    return rendered


def of_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def one(docs, kind, name_suffix=""):
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"{kind} *{name_suffix}: {[d['metadata']['name'] for d in found]}"
    return found[0]


def test_helm_is_v4(helm):
    assert helm("version", "--template", "{{.Version}}").stdout.startswith("v4.")


@pytest.mark.parametrize("name", ["defaults", "replicas-2", "service-monitor"])
def test_lint_strict(helm, name):
    r = helm("lint", "--strict", str(CHART), *VALUE_SETS[name])
    assert "0 chart(s) failed" in r.stdout


@pytest.mark.parametrize("name", VALUE_SETS)
def test_rendered_objects_validate_for_kubernetes_1_35(render, name):
    assert K8S in {kubernetes_validate.utils.major_minor(v) for v in kubernetes_validate.utils.all_versions()}
    docs = render(name)
    checked = set()
    for d in docs:
        if d["kind"] == "ServiceMonitor":
            # a prometheus-operator CRD type: kubernetes-validate only has the built-in kinds; it is checked
            # against the Service it selects in test_service_monitor_selects_the_metrics_service instead
            assert d["apiVersion"] == "monitoring.coreos.com/v1"
            continue
        assert kubernetes_validate.validate(d, K8S, strict=True) == K8S, d["metadata"]["name"]
        checked.add(d["kind"])
    # the chart's own templates, crds/ and the value sets' switches (values.yaml comments)
    assert {"CustomResourceDefinition", "Deployment", "ConfigMap", "Service", "ServiceAccount"} <= checked
    assert {"ClusterRole", "ClusterRoleBinding"} <= checked or {"Role", "RoleBinding"} <= checked
    args = VALUE_SETS[name]
    assert bool(of_kind(docs, "ServiceMonitor")) == ("serviceMonitor.enabled=true" in args)
    assert bool(of_kind(docs, "PodDisruptionBudget")) == any(a.startswith("replicaCount=") for a in args)
    assert bool([c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"].endswith("-dashboards")]) == \
        ("dashboards.enabled=false" not in args)
    crds = {d["spec"]["names"]["kind"]: d for d in of_kind(docs, "CustomResourceDefinition")}
    assert set(crds) == set(CRD_FILES)
    for kind, f in CRD_FILES.items():
        assert crds[kind] == yaml.safe_load(f.read_text()), f"the chart's {kind} CRD differs from {f}"


def test_every_object_carries_the_chart_label(render):
    want = f"{CHART_META['name']}-{CHART_META['version']}"
    for d in render("service-monitor") + render("replicas-2"):
        if d["kind"] == "CustomResourceDefinition":
            continue  # crds/ files are installed as they are, not templated
        assert d["metadata"]["labels"]["helm.sh/chart"] == want, d["metadata"]["name"]
        assert d["metadata"]["labels"]["app.kubernetes.io/version"] == CHART_META["appVersion"]


@pytest.mark.parametrize("args, where", [
    (["--set", "replicaCount=abc"], "/replicaCount"),
    (["--set", "metricsPort=0"], "/metricsPort"),
    (["--set", "config.workers=65"], "/config/workers"),  # operator/app/config.cpp: workers must be 1..64
    (["--set", "replicas=2"], "replicas"),  # a typo of replicaCount: an unknown key
    (["--set", "podDisruptionBudget.minAvailable=half"], "/podDisruptionBudget/minAvailable"),
    (["--set", "serviceMonitor.interval=soon"], "/serviceMonitor/interval"),
])
def test_schema_rejects_bad_values(helm, args, where):
    for cmd in (["template", RELEASE, str(CHART)], ["lint", str(CHART)]):
        r = helm(*cmd, *args, check=False)
        assert r.returncode != 0, f"helm {cmd[0]} accepted {args}"
        out = r.stdout + r.stderr
        assert "schema" in out and where in out, out


def test_schema_describes_every_value(tmp_path):
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator(SCHEMA).validate(VALUES)

    def walk(value, schema, path):
        if isinstance(value, dict):
            assert schema.get("type") == "object", path
            for k, v in value.items():
                props = schema.get("properties", {})
                assert k in props or isinstance(schema.get("additionalProperties"), dict), f"{path}.{k} not in schema"
                walk(v, props.get(k) or schema["additionalProperties"], f"{path}.{k}")
        elif isinstance(value, list) and value:
            for i, v in enumerate(value):
                walk(v, schema["items"], f"{path}[{i}]")
    walk(VALUES, SCHEMA, "values")


def config_cpp_keys():
    """Every key operator/app/config.cpp reads, by section (root, defaults, leaderElection)."""
    src = (REPO / "operator" / "app" / "config.cpp").read_text()
    sections = {"root": None, "d": "defaults", "le": "leaderElection"}
    keys = {}
    for var, key in re.findall(r'read\((\w+), "(\w+)"', src):
        keys.setdefault(sections[var], set()).add(key)
    assert keys[None] and keys["defaults"] and keys["leaderElection"], keys
    return keys


@pytest.mark.parametrize("name", ["defaults", "namespaces", "engine-image"])
def test_operator_config_file(render, name):
    docs = render(name)
    cfg = yaml.safe_load(one(docs, "ConfigMap", "-config")["data"]["config.yaml"])
    keys = config_cpp_keys()
    for k, v in cfg.items():
        if isinstance(v, dict):
            assert k in keys and set(v) <= keys[k], f"config.yaml {k}: {set(v) - keys.get(k, set())} unread"
        else:
            assert k in keys[None], f"config.yaml {k}: not read by operator/app/config.cpp"
    if name == "engine-image":
        assert cfg["engineImage"] == "registry.example/lorax-engine:9.9"
    else:
        assert cfg["engineImage"].endswith(":" + CHART_META["appVersion"]) and not cfg["engineImage"].endswith(
            ":latest"), cfg["engineImage"]
        assert cfg["engineImage"].rsplit(":", 1)[0] == "ghcr.io/lorax-plus/lorax-engine"
    assert cfg["namespaces"] == (["a", "b"] if name == "namespaces" else [])
    dep = one(docs, "Deployment")
    assert cfg["listenPort"] == dep["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    assert cfg["leaderElection"]["leaseNamespace"] == NAMESPACE
    le = cfg["leaderElection"]
    assert le["renewDeadlineSeconds"] < le["leaseDurationSeconds"]  # else the operator refuses the file


# Pod Security Standards, "restricted" (which includes "baseline"): the rules that can be read off a pod spec.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                "net.ipv4.tcp_keepalive_probes"}


def restricted_violations(pod):
    v = []
    psc = pod.get("securityContext", {})
    for f in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(f):
            v.append(f)
    for vol in pod.get("volumes", []):
        types = set(vol) - {"name"}
        if not types <= RESTRICTED_VOLUMES:
            v.append(f"volume {vol['name']}: {types}")
    for s in psc.get("sysctls", []):
        if s["name"] not in SAFE_SYSCTLS:
            v.append(f"sysctl {s['name']}")
    containers = [c for k in ("initContainers", "containers", "ephemeralContainers") for c in pod.get(k, [])]
    assert containers
    for c in containers:
        sc = c.get("securityContext", {})
        name = c["name"]
        if sc.get("privileged"):
            v.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            v.append(f"{name}: allowPrivilegeEscalation not false")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            v.append(f"{name}: capabilities.drop lacks ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            v.append(f"{name}: capabilities.add {caps['add']}")
        if not sc.get("runAsNonRoot", psc.get("runAsNonRoot")):
            v.append(f"{name}: runAsNonRoot not true")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            v.append(f"{name}: runAsUser 0")
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            v.append(f"{name}: seccompProfile {seccomp}")
        apparmor = sc.get("appArmorProfile", psc.get("appArmorProfile", {})).get("type")
        if apparmor not in (None, "RuntimeDefault", "Localhost"):
            v.append(f"{name}: appArmorProfile {apparmor}")
        if sc.get("procMount", "Default") != "Default":
            v.append(f"{name}: procMount")
        if sc.get("windowsOptions", {}).get("hostProcess") or psc.get("windowsOptions", {}).get("hostProcess"):
            v.append(f"{name}: hostProcess")
        selinux = {**psc.get("seLinuxOptions", {}), **sc.get("seLinuxOptions", {})}
        if selinux.get("type") not in (None, "", "container_t", "container_init_t", "container_kvm_t",
                                       "container_engine_t") or selinux.get("user") or selinux.get("role"):
            v.append(f"{name}: seLinuxOptions {selinux}")
        for p in c.get("ports", []):
            if p.get("hostPort"):
                v.append(f"{name}: hostPort {p['hostPort']}")
    return v


def test_restricted_check_catches_violations():
    """The checker itself: a privileged, root, hostPath pod fails it on each count."""
    bad = {"hostNetwork": True, "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
           "containers": [{"name": "c", "securityContext": {"privileged": True, "runAsUser": 0},
                           "ports": [{"containerPort": 80, "hostPort": 80}]}]}
    v = restricted_violations(bad)
    for what in ("hostNetwork", "volume h", "privileged", "allowPrivilegeEscalation", "drop lacks ALL",
                 "runAsNonRoot", "runAsUser 0", "seccompProfile", "hostPort"):
        assert any(what in x for x in v), (what, v)


@pytest.mark.parametrize("name", ["defaults", "replicas-2"])
def test_operator_pod_is_restricted(render, name):
    pod = one(render(name), "Deployment")["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


def matches(selector, labels):
    return selector and all(labels.get(k) == v for k, v in selector.items())


def test_pod_disruption_budget(render):
    assert not of_kind(render("defaults"), "PodDisruptionBudget")  # replicaCount 1 (values.yaml)
    for name, spec in (("replicas-2", {"maxUnavailable": VALUES["podDisruptionBudget"]["maxUnavailable"]}),
                       ("pdb-min-available", {"minAvailable": "50%"})):
        docs = render(name)
        pdb = one(docs, "PodDisruptionBudget")
        assert {k: v for k, v in pdb["spec"].items() if k != "selector"} == spec
        pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
        assert matches(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    assert VALUES["podDisruptionBudget"]["maxUnavailable"] == 1


def test_service_monitor_selects_the_metrics_service(render):
    docs = render("service-monitor")
    sm, svc = one(docs, "ServiceMonitor"), one(docs, "Service", "-metrics")
    assert matches(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])
    assert {e["port"] for e in sm["spec"]["endpoints"]} <= {p["name"] for p in svc["spec"]["ports"]}
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert matches(svc["spec"]["selector"], pod_labels)


def test_dashboards_config_map_holds_the_repo_dashboards(render):
    cm = one(render("defaults"), "ConfigMap", "-dashboards")
    files = {p.name: p for p in (REPO / "dashboards").glob("*.json")}
    assert "engine.json" in files and "operator.json" in files
    assert set(cm["data"]) == set(files)
    for name, p in files.items():
        assert (CHART / "dashboards" / name).read_bytes() == p.read_bytes(), f"helm/lorax/dashboards/{name} differs"
        assert json.loads(cm["data"][name]) == json.loads(p.read_text())
    assert cm["metadata"]["labels"][VALUES["dashboards"]["label"]] == "1"


def notes(helm, *args):
    out = helm("install", "--dry-run=client", "notes-release", str(CHART), "-n", "ml", *args).stdout
    assert "\nNOTES:\n" in out, out[-2000:]
    return out.split("\nNOTES:\n", 1)[1]


def test_notes(helm):
    text = notes(helm, "--set", "config.namespaces={team-a}", "--set", "dashboards.enabled=false")
    assert "release notes-release in namespace ml" in text
    assert "deployment/notes-release-operator" in text
    assert f"ghcr.io/lorax-plus/lorax-engine:{CHART_META['appVersion']}" in text
    assert "dashboards.enabled is false" in text
    # the example resources: applied to a watched namespace, and valid for the CRDs (schema and CEL rules)
    m = re.search(r"kubectl -n (\S+) apply -f - <<'EOF'\n(.*?)\nEOF\n", text, re.S)
    assert m and m.group(1) == "team-a", text
    docs = list(yaml.safe_load_all(m.group(2)))
    assert {d["kind"] for d in docs} == set(CRD_FILES)
    for d in docs:
        validate_cr(d)
    ldep = next(d for d in docs if d["kind"] == "LoraxDeployment")
    lora = next(d for d in docs if d["kind"] == "Adapter")
    assert lora["spec"]["deploymentRef"]["name"] == ldep["metadata"]["name"]
    short = {k: yaml.safe_load(f.read_text())["spec"]["names"]["shortNames"] for k, f in CRD_FILES.items()}
    assert f"get {short['LoraxDeployment'][0]} {ldep['metadata']['name']}" in text
    assert f"get {short['Adapter'][0]}" in text
    assert f'"adapter_id": "{lora["metadata"]["name"]}"' in text
    default = notes(helm)
    assert "notes-release-operator-dashboards" in default and "all namespaces" in default
    assert "kubectl -n ml apply" in default


# ---- the prometheus-adapter rule the engine HPA needs ----

def promtool_check_exprs(exprs, tmp_path):
    rules = {"groups": [{"name": "q", "rules": [{"record": f"q:{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    f = tmp_path / "rules.yaml"
    f.write_text(yaml.safe_dump(rules))
    res = subprocess.run([shutil.which("promtool"), "check", "rules", str(f)], capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr


def hpa_metric():
    src = (REPO / "operator" / "controllers" / "availability_builders.cpp").read_text()
    m = re.search(r'\{"type", "Pods"\},\s*\{"pods",\s*\{\{"metric", \{\{"name", "(\w+)"\}\}\},\s*'
                  r'\{"target", \{\{"type", "(\w+)"\}', src)
    assert m, "HPA metric not found in availability_builders.cpp"
    return m.group(1), m.group(2)


def adapter_rules():
    readme = (CHART / "README.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "seriesQuery" in b]
    assert len(blocks) == 1
    from_readme = yaml.safe_load(blocks[0])
    text = (CHART / "values.yaml").read_text()
    m = re.search(r"^#   rules:\n((?:#     .*\n)+)", text, re.M)
    assert m, "no prometheus-adapter rule in values.yaml comments"
    from_values = yaml.safe_load("rules:\n" + "".join(line[3:] + "\n" for line in m.group(1).splitlines()))
    assert from_values == from_readme, "values.yaml and README.md give different rules"
    return from_readme["rules"]


def test_prometheus_adapter_rule(tmp_path):
    metric, target = hpa_metric()
    assert target == "AverageValue"
    (rule,) = adapter_rules()
    assert re.fullmatch(rule["name"]["matches"], metric) and rule["name"]["as"] == metric
    assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
    assert re.match(rf"{metric}\{{", rule["seriesQuery"])
    # the adapter fills <<.Series>>, <<.LabelMatchers>> and <<.GroupBy>> in; what it sends must parse as PromQL
    query = (rule["metricsQuery"].replace("<<.Series>>", metric)
             .replace("<<.LabelMatchers>>", 'namespace="ml",pod=~"a|b"').replace("<<.GroupBy>>", "pod"))
    assert "<<" not in query
    promtool_check_exprs([rule["seriesQuery"], query], tmp_path)


# ---- dashboards/engine.json ----

def dashboard():
    return json.loads(ENGINE_DASHBOARD.read_text())


def dashboard_exprs():
    return [t["expr"] for p in dashboard()["panels"] for t in p["targets"]]


def variable_queries():
    """The series selectors inside the templating variables' label_values(SELECTOR, LABEL)."""
    out = []
    for v in dashboard()["templating"]["list"]:
        if v["type"] == "query":
            m = re.fullmatch(r"label_values\((.+), (\w+)\)", v["query"])
            assert m, v["query"]
            out.append(m.group(1))
    return out


def concrete(expr):
    """Grafana variables replaced the way an "All" selection ends up: a match-anything regex."""
    out = expr.replace("$namespace", ".*").replace("$job", ".*")
    assert "$" not in out, expr
    return out


def test_engine_dashboard_shape():
    d = dashboard()
    names = {v["name"] for v in d["templating"]["list"]}
    assert {"namespace", "job"} <= names
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    for p in d["panels"]:
        for t in p["targets"]:
            assert 'namespace=~"$namespace"' in t["expr"] and 'job=~"$job"' in t["expr"], t["expr"]
    assert (CHART / "dashboards" / "engine.json").read_bytes() == ENGINE_DASHBOARD.read_bytes()
    metric, _ = hpa_metric()
    assert any(re.search(rf"\b{metric}\b", e) for e in dashboard_exprs())


def test_engine_dashboard_queries_are_valid_promql(tmp_path):
    promtool_check_exprs([concrete(e) for e in dashboard_exprs() + variable_queries()], tmp_path)


def load_e2e_engine_server():
    """tests/e2e/conftest.py's EngineServer (starts `lorax-engine serve` on a port the server picks)."""
    e2e = REPO / "tests" / "e2e"
    if str(e2e) not in sys.path:
        sys.path.append(str(e2e))  # its e2e_tiny_model import
    spec = importlib.util.spec_from_file_location("e2e_engine_server", e2e / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.EngineServer


def test_engine_dashboard_series_exist_on_a_live_engine(engine_bin):
    server = load_e2e_engine_server()(engine_bin, REPO / "models" / "demo")
    try:
        r = requests.post(server.url + "/generate", json={"inputs": "This License",
                                                          "parameters": {"max_new_tokens": 4}}, timeout=60)
        assert r.status_code == 200, r.text
        # one rejected request, so that the failure counter (labelled by error type) has a sample
        r = requests.post(server.url + "/generate", json={"inputs": "x", "parameters": {"max_new_tokens": 0}},
                          timeout=60)
        assert r.status_code == 422, r.text
        text = server.metrics()
    finally:
        rc = server.stop()
        server.proc.stdout.close()
        server.proc.stderr.close()
        assert rc == 0, "".join(server.stderr)
    samples, values = {}, {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            samples.setdefault(s.name, set()).update(s.labels)
            values[s.name] = values.get(s.name, 0) + s.value
    assert values["lorax_request_time_to_first_token_duration_count"] == 1  # the histograms saw the request
    assert values["lorax_request_failure_total"] == 1
    for e in dashboard_exprs() + variable_queries():
        for name in re.findall(r"\blorax_[a-z_]+\b", e):
            assert name in samples, f"engine.json queries {name}, which lorax-engine does not export"
            if name.endswith("_bucket"):
                assert "le" in samples[name]
        for label in re.findall(r"by \(([^)]*)\)", e):
            for lab in (x.strip() for x in label.split(",")):
                if lab not in ("job", "instance", "namespace", "pod", "le"):  # added by Prometheus / histograms
                    used = {n for n in re.findall(r"\blorax_[a-z_]+\b", e)}
                    assert any(lab in samples[n] for n in used), f"{e}: no series has the label {lab}"
