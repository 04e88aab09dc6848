"""The operator talks HTTPS to an API server whose CA comes from the kubeconfig
(certificate-authority-data), and refuses a server it cannot verify."""
import shutil
import subprocess
import time

import pytest

from op_harness import Cluster, Operator, wait_for
from test_operator_ldep import SPEC, available, spec_with_engine_port


@pytest.fixture
def tls_cluster(tmp_path):
    openssl = shutil.which("openssl")
    if not openssl:
        pytest.skip("openssl CLI not installed")
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=fake-apiserver",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    c = Cluster(tls=(str(cert), str(key)))
    c.api.required_token = "tls-operator"
    yield c, cert.read_bytes()
    c.stop()


def test_https_with_ca_from_kubeconfig(tls_cluster, operator_bin, tmp_path):
    cluster, ca = tls_cluster
    assert cluster.api.url.startswith("https://")
    op = Operator(operator_bin, cluster, tmp_path, token="tls-operator", ca_pem=ca)
    try:
        cluster.api.store.client_write("loraxdeployments", {
            "metadata": {"name": "m1", "namespace": "default"}, "spec": spec_with_engine_port(cluster, SPEC)})
        wait_for(lambda: available(cluster, ready=2), 20, "m1 Available over HTTPS")
    finally:
        op.stop()


def test_unverifiable_server_is_refused(tls_cluster, operator_bin, tmp_path):
    cluster, _ = tls_cluster
    op = Operator(operator_bin, cluster, tmp_path, token="tls-operator", ca_pem=None)  # system CAs only
    try:
        cluster.api.store.client_write("loraxdeployments", {
            "metadata": {"name": "m1", "namespace": "default"}, "spec": spec_with_engine_port(cluster, SPEC)})
        time.sleep(2)
        assert cluster.get("deployments", "m1") is None
        assert cluster.api.since(0, "tls-operator") == []  # no request got through the handshake
        assert "leader election" in op.logs()  # it reports why it cannot proceed
    finally:
        op.stop()
