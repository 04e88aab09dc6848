"""Adapter sources over HTTP, against a local Python HTTP server on 127.0.0.1 serving the fixture adapter files:
`url` (with `#sha256=`), `hub` (ORG/NAME under --hub-endpoint, api_token as a bearer header) and `s3` (BUCKET/KEY
under --s3-endpoint) load and match peft's reference; a download over --adapter-max-bytes, a sha256 mismatch and a
missing file are clear 4xx errors; a second load after unloading comes from the on-disk cache without any request
to the server."""
import hashlib
import http.server
import json
import pathlib
import threading

import pytest
import requests

REPO = pathlib.Path(__file__).resolve().parents[2]
ADAPTERS = REPO / "tests" / "fixtures" / "adapters"
MODELS = REPO / "tests" / "fixtures" / "models"


class FileServer:
    """Serves ADAPTERS under /files/, /hub/ORG/NAME/resolve/main/ and /s3/BUCKET/KEY/; records every request.
    With a `gate` (threading.Event), every answer waits until it is set: a source that stalls."""

    def __init__(self, gate=None):
        self.log = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.log.append((self.path, self.headers.get("Authorization")))
                if gate is not None:
                    gate.wait(120)
                path = self.path.split("?")[0]
                if path.startswith("/hub/"):
                    rel = path[len("/hub/"):].replace("/resolve/main/", "/", 1)
                elif path.startswith("/s3/"):
                    rel = path[len("/s3/"):]
                elif path.startswith("/files/"):
                    rel = path[len("/files/"):]
                else:
                    rel = None
                f = (ADAPTERS / rel).resolve() if rel else None
                if not f or ADAPTERS not in f.parents or not f.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = f.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def files():
    s = FileServer()
    yield s
    s.httpd.shutdown()


def generate(server, name, source, case, **extra):
    p = {"adapter_id": name, "adapter_source": source, "max_new_tokens": 12, "ignore_eos_token": True,
         "decoder_input_details": True, "details": True, **extra}
    return requests.post(server.url + "/generate", json={"inputs": case["prompt"], "parameters": p}, timeout=60)


def check_reference(r, folder):
    assert r.status_code == 200, r.text
    case = json.loads((folder / "reference.json").read_text())["cases"][0]
    d = r.json()["details"]
    for got, want in zip(d["prefill"][1:], case["prefill_logprobs"][1:]):
        assert got["logprob"] == pytest.approx(want, abs=1e-3)
    assert [t["id"] for t in d["tokens"]] == case["greedy_ids"]


def first_case(folder):
    return json.loads((folder / "reference.json").read_text())["cases"][0]


def test_url_hub_s3_sources(start_server, files, tmp_path):
    s = start_server("--adapter-cache-dir", tmp_path / "cache", "--adapter-max-bytes", "50000",
                     "--hub-endpoint", files.url + "/hub", "--s3-endpoint", files.url + "/s3",
                     "--max-total-tokens", "120", "--max-input-length", "100", model=MODELS / "llama")
    attn = ADAPTERS / "llama" / "attn-r8"
    sha = hashlib.sha256((attn / "adapter_model.safetensors").read_bytes()).hexdigest()
    url = f"{files.url}/files/llama/attn-r8#sha256={sha}"

    # url, with its sha256; both files fetched from the folder.
    check_reference(generate(s, url, "url", first_case(attn)), attn)
    assert sorted(p for p, _ in files.log) == ["/files/llama/attn-r8/adapter_config.json",
                                               "/files/llama/attn-r8/adapter_model.safetensors"]
    assert not list((tmp_path / "cache").glob(".partial-*")), "temporary download left behind"

    # Cache hit: unload, load again, no request reaches the file server.
    before = len(files.log)
    assert requests.delete(s.url + "/adapters/" + requests.utils.quote(url, safe=""), timeout=10).status_code == 200
    check_reference(generate(s, url, "url", first_case(attn)), attn)
    assert len(files.log) == before

    # hub: ORG/NAME -> --hub-endpoint/ORG/NAME/resolve/main/, api_token as a bearer token.
    pat = ADAPTERS / "llama" / "all-r4-patterns"
    check_reference(generate(s, "llama/all-r4-patterns", "hub", first_case(pat), api_token="secret-token"), pat)
    hub_requests = [(p, a) for p, a in files.log if p.startswith("/hub/")]
    assert [p for p, _ in hub_requests] == ["/hub/llama/all-r4-patterns/resolve/main/adapter_config.json",
                                            "/hub/llama/all-r4-patterns/resolve/main/adapter_model.safetensors"]
    assert all(a == "Bearer secret-token" for _, a in hub_requests)

    # s3: BUCKET/KEY (or s3://BUCKET/KEY) -> --s3-endpoint/BUCKET/KEY/.
    mlp = ADAPTERS / "llama" / "mlp-r1-layers"
    check_reference(generate(s, "s3://llama/mlp-r1-layers", "s3", first_case(mlp)), mlp)
    assert any(p == "/s3/llama/mlp-r1-layers/adapter_model.safetensors" for p, _ in files.log)

    # Refusals: too big (all-r16-rslora is ~135 kB), wrong sha256, missing on the server, bad names.
    case = first_case(attn)
    r = generate(s, files.url + "/files/llama/all-r16-rslora", "url", case)
    assert r.status_code == 422 and "--adapter-max-bytes" in r.json()["error"], r.text
    r = generate(s, files.url + "/files/llama/attn-r8#sha256=" + "0" * 64, "url", case)
    assert r.status_code == 422 and "sha256" in r.json()["error"], r.text
    r = generate(s, "llama/no-such-adapter", "hub", case)
    assert r.status_code == 404 and r.json()["error_type"] == "not_found", r.text
    r = generate(s, "../etc", "hub", case)
    assert r.status_code == 422 and "ORG/NAME" in r.json()["error"], r.text
    r = generate(s, "ftp://example.com/x", "url", case)
    assert r.status_code == 422, r.text
    assert not list((tmp_path / "cache").glob(".partial-*")), "temporary download left behind"
    # POST /adapters takes a sha256 field too.
    r = requests.post(s.url + "/adapters", json={"adapter_id": files.url + "/files/llama/mlp-r1-layers",
                                                 "adapter_source": "url", "sha256": "1" * 64}, timeout=30)
    assert r.status_code == 422 and "sha256" in r.json()["error"], r.text
    assert s.stop() == 0
