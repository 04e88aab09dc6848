"""The operator-to-engine contract: what the operator emits for a LoraxDeployment (operator_render: the same
builders the controller applies) is run as-is with the real lorax-engine, the container paths mapped onto temporary
folders as the pod's volumes would provide them. The fetch-model init container's `download` fetches an hf:// model
from a loopback fake hub, the serve container starts on that cache with every emitted flag (an unknown flag would be a
usage error), its adapter registry is the rendered ConfigMap and its token folder the rendered Secret, and the real
clients (`lorax-client`, `openai`) reach adapters of each source kind by their Adapter names, with the outputs of
loading the same folders by path."""
import base64
import importlib.util
import json
import os
import pathlib
import re
import subprocess
import threading
import time

import openai
import pytest
import requests
from lorax import Client

from op_crd_schema import BUILD, REPO, validate_cr

ADAPTERS = REPO / "tests" / "fixtures" / "adapters" / "llama"


def fake_hub_class():
    spec = importlib.util.spec_from_file_location("model_download_e2e", REPO / "tests" / "e2e" / "test_model_download.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.FakeHub


def render(tmp_path, *objs):
    files = []
    for i, o in enumerate(objs):
        f = tmp_path / f"in-{i}.json"
        f.write_text(json.dumps(o))
        files.append(str(f))
    out = subprocess.run([str(BUILD / "tests" / "operator_render"), *files], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return {o["kind"]: o for o in json.loads(out.stdout)}


class Pod:
    """The pod's filesystem under `root`: container path /x is root/x, except the hostPath adapter folder, which
    the pod mounts at its node path."""

    def __init__(self, root, mounts):
        self.root = root
        for m in mounts:
            os.makedirs(self.path(m["mountPath"]), exist_ok=True)

    def path(self, p):
        return p if p.startswith(str(ADAPTERS)) else str(self.root) + p

    def args(self, args):
        return [self.path(a) if a.startswith("/") else a for a in args]


def test_emitted_pod_runs_with_the_real_engine_and_clients(engine_bin, tmp_path):
    hub = fake_hub_class()(repo="org/tiny-llama", token="hf_secret")
    try:
        ldep = {"apiVersion": "lorax.dev/v1alpha1", "kind": "LoraxDeployment",
                "metadata": {"name": "m1", "namespace": "ml", "uid": "u1", "generation": 1},
                "spec": {"model": {"source": "hf://org/tiny-llama", "hubEndpoint": hub.url,
                                   "tokenSecretRef": {"name": "hub"}},
                         "engine": {"device": "cpu", "modelId": "tiny", "shutdownTimeoutSeconds": 5,
                                    "maxTotalTokens": 256, "maxInputLength": 128, "port": 8080,
                                    "prefixCaching": True, "kvCacheDtype": "fp8", "maxConnections": 64,
                                    "maxSchemaBytes": 4096, "maxBestOf": 3,
                                    "env": [{"name": "OPENBLAS_NUM_THREADS", "value": "1"}]},
                         "adapters": {"maxActive": 2, "maxLoaded": 2, "maxHost": 4, "maxHostBytes": 0,
                                      "cycleTimeSeconds": 1.5, "claims": ["loras"], "hostPaths": [str(ADAPTERS)],
                                      "urlAllow": ["127.0.0.1"]}}}
        adapters = [
            {"apiVersion": "lorax.dev/v1alpha1", "kind": "Adapter",
             "metadata": {"name": "by-file", "namespace": "ml", "generation": 1},
             "spec": {"deploymentRef": {"name": "m1"}, "source": f"file://{ADAPTERS}/attn-r8"}},
            {"apiVersion": "lorax.dev/v1alpha1", "kind": "Adapter",
             "metadata": {"name": "by-claim", "namespace": "ml", "generation": 1},
             "spec": {"deploymentRef": {"name": "m1"}, "source": "pvc://loras/mlp-r1-layers",
                      "adapterId": "team/mlp-v1"}},
        ]
        for o in [ldep, *adapters]:
            validate_cr(o)
        objs = render(tmp_path, ldep, *adapters)
        pod_spec = objs["Deployment"]["spec"]["template"]["spec"]
        serve, fetch = pod_spec["containers"][0], pod_spec["initContainers"][0]
        pod = Pod(tmp_path / "pod", serve["volumeMounts"])
        # what kubelet provides: the claim's files, the ConfigMap and Secret as files, HF_TOKEN from the Secret
        os.rmdir(pod.path("/adapters/loras"))
        os.symlink(ADAPTERS, pod.path("/adapters/loras"))
        registry = json.loads(objs["ConfigMap"]["data"]["adapters.json"])
        for e in registry:  # paths inside the file are container paths too
            if e["source"] == "local":
                e["location"] = pod.path(e["location"])
            if "token_file" in e:
                e["token_file"] = pod.path(e["token_file"])
        (pathlib.Path(pod.path("/etc/lorax/adapters")) / "adapters.json").write_text(json.dumps(registry))
        for k, v in objs["Secret"].get("data", {}).items():
            (pathlib.Path(pod.path("/etc/lorax/adapter-tokens")) / k).write_bytes(base64.b64decode(v))
        env = {"PATH": "/usr/bin:/bin", "HF_TOKEN": "hf_secret"}
        for e in serve.get("env", []):
            if "value" in e:
                env[e["name"]] = e["value"]
        assert [e["name"] for e in serve["env"]][0] == "HF_TOKEN" and fetch["env"] == serve["env"]

        assert fetch["command"] == ["lorax-engine"] and serve["command"] == ["lorax-engine"]
        r = subprocess.run([str(engine_bin), *pod.args(fetch["args"])], capture_output=True, text=True, timeout=120,
                           env=env)
        assert r.returncode == 0, r.stderr
        requests_before = len(hub.log)

        args = pod.args(serve["args"])
        args[args.index("--port") + 1] = "0"
        args[args.index("--host") + 1] = "127.0.0.1"
        proc = subprocess.Popen([str(engine_bin), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env)
        stderr = []
        threading.Thread(target=lambda: stderr.extend(proc.stderr), daemon=True).start()
        try:
            line = proc.stdout.readline()
            m = re.search(r"listening on [\d.]+:(\d+)", line)
            assert m, (line, "".join(stderr), args)
            url = f"http://127.0.0.1:{m[1]}"
            assert requests.get(url + "/health", timeout=10).status_code == 200
            assert len(hub.log) == requests_before, "serve must find the model the init container fetched"
            info = requests.get(url + "/info", timeout=10).json()
            assert info["model_id"] == "tiny" and info["max_best_of"] == 3

            client = Client(url)
            by_name = client.generate("Hello there", adapter_id="by-file", max_new_tokens=6, details=True)
            by_path = client.generate("Hello there", adapter_id=f"{ADAPTERS}/attn-r8", adapter_source="local",
                                      max_new_tokens=6, details=True)
            base = client.generate("Hello there", max_new_tokens=6, details=True)
            assert [t.id for t in by_name.details.tokens] == [t.id for t in by_path.details.tokens] != \
                [t.id for t in base.details.tokens]
            oa = openai.OpenAI(base_url=url + "/v1", api_key="unused")
            got = oa.completions.create(model="team/mlp-v1", prompt="Hello there", max_tokens=6, temperature=0)
            # the same folder named under --adapter-dir (/adapters), as a LoRAX client may
            direct = oa.completions.create(model="loras/mlp-r1-layers", prompt="Hello there", max_tokens=6,
                                           temperature=0)
            assert got.choices[0].text == direct.choices[0].text
            assert {"tiny", "by-file", "team/mlp-v1"} <= {m.id for m in oa.models.list()}
            info = requests.get(url + "/adapters/team%2Fmlp-v1", timeout=10).json()
            assert info["registered"] and info["loaded"] and info["registry_generation"] == 1
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, "".join(stderr)
    finally:
        hub.stop()
