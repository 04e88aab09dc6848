"""Starts the real lorax-operator against the API-server double, with fake engine pods."""
import json
import signal
import socket
import subprocess
import time
import urllib.request

import requests
import yaml

from op_fake_apiserver import FakeApiServer
from op_fake_engine import FakeEngine


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except (KeyError, IndexError, TypeError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Cluster:
    """The double plus fake engines; pods get loopback addresses 127.0.0.<n>, one engine each."""

    def __init__(self, tls=None):
        self.api = FakeApiServer(tls=tls)
        self.engine_port = free_port()
        self.engines = {}  # pod name -> FakeEngine
        self._next_ip = 10
        self.api.store.ip_for_pod = self._ip_for_pod
        self.http = requests.Session()

    def _ip_for_pod(self, pod):
        if pod not in self.engines:
            ip = f"127.0.0.{self._next_ip}"
            self._next_ip += 1
            self.engines[pod] = FakeEngine(ip, self.engine_port, registry=lambda: self.registry_of(pod))
        return self.engines[pod].ip

    def registry_of(self, pod):
        """The adapter registry a pod of Deployment <dep> sees: ConfigMap <dep>-adapters (pods are <dep>-<i>)."""
        dep = pod.rsplit("-", 1)[0]
        with self.api.store.cond:
            cms = [o for (p, _, n), o in self.api.store.objects.items() if p == "configmaps" and n == f"{dep}-adapters"]
        if not cms:
            return {}
        return {e["id"]: e for e in json.loads(cms[0]["data"]["adapters.json"])}

    # kubectl-like calls through HTTP, as a separate client ("kubectl" token)
    def _url(self, plural, ns, name=None, sub=None, group="lorax.dev/v1alpha1"):
        base = f"{self.api.url}/apis/{group}" if "/" in group else f"{self.api.url}/api/{group}"
        return base + f"/namespaces/{ns}/{plural}" + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")

    def kubectl(self, method, plural, ns, name=None, body=None, group="lorax.dev/v1alpha1", sub=None):
        r = self.http.request(method, self._url(plural, ns, name, sub, group), json=body,
                              headers={"Authorization": "Bearer kubectl"}, timeout=10)
        return r.status_code, r.json()

    def create_ldep(self, name, spec, ns="default"):
        code, body = self.kubectl("POST", "loraxdeployments", ns, body={
            "apiVersion": "lorax.dev/v1alpha1", "kind": "LoraxDeployment",
            "metadata": {"name": name, "namespace": ns}, "spec": spec})
        assert code == 201, body
        return body

    def create_adapter(self, name, spec, ns="default"):
        code, body = self.kubectl("POST", "adapters", ns, body={
            "apiVersion": "lorax.dev/v1alpha1", "kind": "Adapter",
            "metadata": {"name": name, "namespace": ns}, "spec": spec})
        assert code == 201, body
        return body

    def edit(self, plural, name, fn, ns="default", group="lorax.dev/v1alpha1"):
        """GET, modify, PUT with the resourceVersion; retries on 409 like kubectl edit would."""
        for _ in range(20):
            code, obj = self.kubectl("GET", plural, ns, name, group=group)
            assert code == 200, obj
            fn(obj)
            code, out = self.kubectl("PUT", plural, ns, name, obj, group=group)
            if code == 200:
                return out
            assert code == 409, out
        raise AssertionError("edit kept conflicting")

    def get(self, plural, name, ns="default"):
        return self.api.store.get(plural, ns, name)

    def engine_calls(self):
        return {pod: list(e.calls) for pod, e in self.engines.items()}

    def stop(self):
        self.api.stop()
        for e in self.engines.values():
            e.stop()


class Operator:
    def __init__(self, binary, cluster, tmp_path, token="operator", ca_pem=None, **config):
        self.port = free_port()
        self.token = token
        cfg = {"listenHost": "127.0.0.1", "listenPort": self.port, "workers": 2, "watchTimeoutSeconds": 30,
               "resyncSeconds": 0, "engineImage": "example.com/lorax-engine:test",
               "leaderElection": {"enabled": True, "leaseNamespace": "default", "leaseName": "lorax-operator",
                                  "identity": token, "leaseDurationSeconds": 3, "renewDeadlineSeconds": 2,
                                  "retryPeriodSeconds": 0.5}}
        cfg.update(config)
        self.config = tmp_path / f"op-{token}.yaml"
        self.config.write_text(yaml.safe_dump(cfg))
        kubeconfig = cluster.api.write_kubeconfig(tmp_path / f"kubeconfig-{token}", token, ca_pem)
        self.log = tmp_path / f"op-{token}.log"
        self.proc = subprocess.Popen([str(binary), "--config", str(self.config), "--kubeconfig", str(kubeconfig)],
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))
        wait_for(lambda: self._get("/healthz") == 200 or self.proc.poll() is not None, 10, "operator /healthz")
        assert self.proc.poll() is None, self.logs()

    def _get(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return r.status
        except Exception:
            return None

    def metrics(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
            return r.read().decode()

    def logs(self):
        return self.log.read_text()

    def log_lines(self):
        return [json.loads(line) for line in self.logs().splitlines() if line.startswith("{")]

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# Fixtures (imported by the test modules; a conftest.py here would shadow tests/conftest.py).
import pytest  # noqa: E402


@pytest.fixture
def cluster():
    c = Cluster()
    yield c
    c.stop()


@pytest.fixture
def start_operator(operator_bin, cluster, tmp_path):
    ops = []

    def start(**kw):
        op = Operator(operator_bin, cluster, tmp_path, **kw)
        ops.append(op)
        return op
    yield start
    for op in ops:
        op.stop()
