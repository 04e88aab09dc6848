"""The real kubectl (v1.35, .venv/bin/kubectl from scripts/install-kube-tools) against the double: it finds our
kinds by short name through discovery (names taken from the CRD files) and `kubectl scale` goes through the CRD's
scale subresource, which the operator turns into engine replicas."""
import json
import subprocess

from op_harness import cluster, start_operator, wait_for  # noqa: F401 (fixtures)
from test_operator_ldep import SPEC, available, spec_with_engine_port


def test_kubectl_scale_and_get_by_short_name(cluster, start_operator, tmp_path, kubectl_bin):
    # kubectl_bin (tests/conftest.py) fails the test when .venv/bin/kubectl is missing: no skip
    def kubectl(kc, *args):
        r = subprocess.run([str(kubectl_bin), "--kubeconfig", str(kc), "--cache-dir", str(kc.parent / "kcache"), *args],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout

    start_operator()
    kc = cluster.api.write_kubeconfig(tmp_path / "kc-kubectl", "kubectl")
    cluster.create_ldep("m1", spec_with_engine_port(cluster, SPEC))
    wait_for(lambda: available(cluster, ready=2), 20, "m1 Available")
    out = json.loads(kubectl(kc, "get", "ldep", "m1", "-o", "json"))
    assert out["status"]["readyReplicas"] == 2
    kubectl(kc, "scale", "ldep", "m1", "--replicas=3")
    wait_for(lambda: available(cluster, ready=3), 15, "scaled through the scale subresource")
    assert cluster.get("deployments", "m1")["spec"]["replicas"] == 3
    scale = json.loads(kubectl(kc, "get", "--raw", "/apis/lorax.dev/v1alpha1/namespaces/default/loraxdeployments/m1/scale"))
    assert scale["spec"]["replicas"] == 3 and scale["status"]["replicas"] == 3
    assert scale["status"]["selector"] == "app.kubernetes.io/instance=m1,app.kubernetes.io/name=lorax-engine"
    cluster.create_adapter("a", {"deploymentRef": {"name": "m1"}, "source": "hf://o/a"})
    assert json.loads(kubectl(kc, "get", "lora", "-o", "json"))["items"][0]["metadata"]["name"] == "a"
