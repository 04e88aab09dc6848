"""`--model hf://ORG/NAME` (DESIGN.md §4) against a loopback fake hub that serves the fixture Llama: the
`lorax-engine download` command (the pods' fetch-model init container) fetches every file into the cache, `generate`
on the hf:// name then answers exactly as on the local folder without any request to the hub; a connection that
drops mid-file resumes with a Range request; a run that gives up leaves its partial file and the next run resumes
it; a file whose bytes do not match the hub's sha256 ETag is removed and the run fails; private, missing and empty
repositories fail with one clear line."""
import hashlib
import http.server
import json
import pathlib
import re
import subprocess
import threading
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
LLAMA = REPO / "tests" / "fixtures" / "models" / "llama"
FILES = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]


class FakeHub:
    """Hugging Face's two routes: /api/models/ORG/NAME/revision/REV (the file list) and
    /ORG/NAME/resolve/REV/FILE (the bytes, ETag = sha256 for *.safetensors like LFS files, Range honoured).
    `drop_after[file]` = n: the next answers for that file stop after n bytes (as many times as listed)."""

    def __init__(self, repo="org/tiny-llama", token=None, files=None, corrupt=None):
        self.log, self.drops = [], {}
        self.files = {f: (LLAMA / f).read_bytes() for f in (files or FILES)}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def send(self, code, body=b"", headers=()):
                self.send_response(code)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                outer.log.append((self.path, self.headers.get("Range"), self.headers.get("Authorization")))
                if token and self.headers.get("Authorization") != f"Bearer {token}":
                    return self.send(401, b'{"error":"gated"}')
                if self.path == f"/api/models/{repo}/revision/main":
                    body = json.dumps({"id": repo, "siblings": [{"rfilename": f} for f in
                                                                 [*outer.files, "README.md", "original/x.pth"]]})
                    return self.send(200, body.encode())
                prefix = f"/{repo}/resolve/main/"
                name = self.path[len(prefix):] if self.path.startswith(prefix) else None
                if name not in outer.files:
                    return self.send(404, b"not found")
                data = outer.files[name]
                sha = hashlib.sha256(data).hexdigest()
                served = (corrupt or {}).get(name, data)
                headers = [("ETag", f'"{sha}"')] if name.endswith(".safetensors") else [("ETag", '"w1"')]
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].rstrip("-"))
                    headers.append(("Content-Range", f"bytes {start}-{len(served) - 1}/{len(served)}"))
                body = served[start:]
                drops = outer.drops.get(name)
                if drops:
                    n = drops.pop(0)
                    self.send_response(206 if start else 200)
                    for k, v in headers:
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[:n])
                    self.wfile.flush()
                    time.sleep(0.3)  # the client has taken what arrived before the connection drops
                    self.close_connection = True
                    return
                self.send(206 if start else 200, body, headers)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()


@pytest.fixture
def hub():
    hubs = []

    def make(**kw):
        h = FakeHub(**kw)
        hubs.append(h)
        return h

    yield make
    for h in hubs:
        h.stop()


def run(engine_bin, *args, env=None, timeout=120):
    return subprocess.run([str(engine_bin), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={"PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "1", **(env or {})})


def download(engine_bin, h, cache, env=None, repo="org/tiny-llama"):
    return run(engine_bin, "download", "--model", f"hf://{repo}", "--model-cache-dir", cache,
               "--hub-endpoint", h.url, env=env)


def generate(engine_bin, model, *extra):
    r = run(engine_bin, "generate", "--model", model, "--prompt", "Hello", "--max-new-tokens", "8", "--json",
            "--threads", "1", *extra)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_download_then_serve_from_cache_without_requests(engine_bin, hub, tmp_path):
    h = hub()
    r = download(engine_bin, h, tmp_path)
    assert r.returncode == 0, r.stderr
    where = pathlib.Path(r.stdout.strip())
    assert where == tmp_path / "models--org--tiny-llama" / "main"
    assert sorted(p.name for p in where.iterdir()) == sorted(FILES)  # README.md and original/ skipped
    for f in FILES:
        assert (where / f).read_bytes() == (LLAMA / f).read_bytes()
    assert "fetch org/tiny-llama" in r.stderr and "complete" in r.stderr  # progress in the logs
    seen = len(h.log)
    got = generate(engine_bin, "hf://org/tiny-llama", "--model-cache-dir", tmp_path, "--hub-endpoint", h.url)
    assert len(h.log) == seen, "a cached model must not be fetched again"
    assert got == generate(engine_bin, LLAMA)


def test_dropped_connection_resumes_with_range(engine_bin, hub, tmp_path):
    h = hub()
    size = (LLAMA / "model.safetensors").stat().st_size
    h.drops["model.safetensors"] = [size - 10]
    r = download(engine_bin, h, tmp_path)
    assert r.returncode == 0, r.stderr
    ranges = [rng for path, rng, _ in h.log if path.endswith("model.safetensors")]
    # Resumed where the written part ended (cpprest hands the body over in blocks, so somewhere before the drop).
    assert len(ranges) == 2 and ranges[0] is None, ranges
    m = re.fullmatch(r"bytes=(\d+)-", ranges[1] or "")
    assert m and 0 < int(m[1]) <= size - 10, ranges
    where = pathlib.Path(r.stdout.strip())
    assert (where / "model.safetensors").read_bytes() == (LLAMA / "model.safetensors").read_bytes()


def test_interrupted_run_leaves_partial_and_next_run_resumes(engine_bin, hub, tmp_path):
    h = hub()
    size = (LLAMA / "model.safetensors").stat().st_size
    h.drops["model.safetensors"] = [size - 10, 0, 0]  # all three attempts end early
    r = download(engine_bin, h, tmp_path)
    assert r.returncode == 1 and "rerun to resume" in r.stderr, r.stderr
    partial = tmp_path / "models--org--tiny-llama" / "main.partial"
    kept = (partial / "model.safetensors.part").stat().st_size
    assert 0 < kept < size
    assert not (tmp_path / "models--org--tiny-llama" / "main").exists(), "an incomplete model must not look complete"
    h.log.clear()
    r = download(engine_bin, h, tmp_path)
    assert r.returncode == 0, r.stderr
    assert [rng for p, rng, _ in h.log if p.endswith("model.safetensors")] == [f"bytes={kept}-"]
    assert not [p for p, _, _ in h.log if p.endswith("/config.json")], "finished files are not fetched again"
    assert (pathlib.Path(r.stdout.strip()) / "model.safetensors").stat().st_size == size


def test_corrupt_file_is_removed_and_reported(engine_bin, hub, tmp_path):
    data = bytearray((LLAMA / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    h = hub(corrupt={"model.safetensors": bytes(data)})
    r = download(engine_bin, h, tmp_path)
    assert r.returncode == 1
    assert "model.safetensors is corrupt" in r.stderr and hashlib.sha256(data).hexdigest() in r.stderr, r.stderr
    partial = tmp_path / "models--org--tiny-llama" / "main.partial"
    assert not (partial / "model.safetensors.part").exists() and not (partial / "model.safetensors").exists()
    assert not (tmp_path / "models--org--tiny-llama" / "main").exists()


def test_token_from_hf_token_and_clear_errors(engine_bin, hub, tmp_path):
    h = hub(token="s3cret")
    r = download(engine_bin, h, tmp_path / "a")
    assert r.returncode == 1 and "401" in r.stderr and "HF_TOKEN" in r.stderr, r.stderr
    r = download(engine_bin, h, tmp_path / "b", env={"HF_TOKEN": "s3cret"})
    assert r.returncode == 0, r.stderr
    assert {auth for _, _, auth in h.log} >= {"Bearer s3cret"}
    r = download(engine_bin, h, tmp_path / "c", env={"HF_TOKEN": "s3cret"}, repo="org/missing")
    assert r.returncode == 1 and "not found" in r.stderr, r.stderr
    empty = hub(files=["config.json"])
    r = download(engine_bin, empty, tmp_path / "d")
    assert r.returncode == 1 and "no .safetensors weights" in r.stderr, r.stderr
    for bad in ["hf://only-org", "hf://org/na me", "hf://../x"]:
        r = run(engine_bin, "download", "--model", bad, "--model-cache-dir", tmp_path / "e", "--hub-endpoint", h.url)
        assert r.returncode in (1, 2) and "hf://ORG/NAME" in r.stderr, (bad, r.stderr)
    r = run(engine_bin, "download", "--model", str(LLAMA))
    assert r.returncode == 2 and "hf://ORG/NAME" in r.stderr
    # the hf:// flags are refused with a local model rather than ignored
    r = run(engine_bin, "generate", "--model", str(LLAMA), "--prompt", "x", "--model-revision", "v2")
    assert r.returncode == 2 and "--model-revision only applies to an hf://ORG/NAME --model" in r.stderr, r.stderr
