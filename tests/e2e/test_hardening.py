"""Issue 14's probes, each one a request that crashed, wrapped, leaked or was wrongly accepted before: now a clear
4xx (or the right answer), and the server stays healthy. SSRF: a client-named URL reaches only public hosts or
hosts the operator allowed (--adapter-url-allow), redirects across hosts are refused, the token stays with its
host."""
import http.server
import json
import os
import shutil
import subprocess
import threading
import time

import pytest
import requests

from raw_http import read_until_closed
from test_adapters_sources import ADAPTERS, MODELS, FileServer, first_case

LLAMA = ("--max-total-tokens", "120", "--max-input-length", "100")
ATTN = ADAPTERS / "llama" / "attn-r8"


def check_error(resp, status, error_type="validation", words=()):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error", "error_type"} and body["error_type"] == error_type, body
    for w in words:
        assert w in body["error"], body


@pytest.fixture
def files():
    s = FileServer()
    yield s
    s.httpd.shutdown()


def gen(server, inputs="hello", **params):
    return requests.post(server.url + "/generate", json={"inputs": inputs, "parameters": params}, timeout=60)


# --- numbers ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("params,field", [
    ({"max_new_tokens": 2**32 + 1}, "max_new_tokens"),   # wrapped to 1 before
    ({"top_k": 2**32 + 5}, "top_k"),
    ({"truncate": 2**32 + 3}, "truncate"),
    ({"best_of": 2**32 + 1}, "best_of"),
    ({"max_new_tokens": -2**63}, "max_new_tokens"),
    ({"temperature": 1e-320, "do_sample": True}, "temperature"),   # NaN logits before
    ({"repetition_penalty": 1e-320}, "repetition_penalty"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),                  # /info says 4
])
def test_out_of_range_generate_fields_are_422(server, params, field):
    check_error(gen(server, **params), 422, words=(f"`{field}`",))


@pytest.mark.parametrize("body,field", [
    ({"n": 2**32 + 1}, "n"),
    ({"max_tokens": 2**32 + 1}, "max_tokens"),
    ({"logprobs": 2**32}, "logprobs"),
    ({"best_of": 2**32 + 1}, "best_of"),
    ({"stop": ["1", "2", "3", "4", "5"]}, "stop"),
])
def test_out_of_range_openai_fields_are_422(server, body, field):
    r = requests.post(server.url + "/v1/completions", json={"prompt": "hi", **body}, timeout=30)
    check_error(r, 422, words=(f"`{field}`",))


def test_four_stop_sequences_are_accepted(server):
    assert requests.get(server.url + "/info", timeout=10).json()["max_stop_sequences"] == 4
    assert gen(server, max_new_tokens=2, stop=["a", "b", "c", "d"]).status_code == 200


def test_tokenize_input_is_bounded(server):
    r = requests.post(server.url + "/tokenize", json={"inputs": "ab " * 400_000}, timeout=60)  # 1.2 MB
    check_error(r, 413, words=["at most 1048576 bytes"])
    r = requests.post(server.url + "/tokenize", json={"inputs": "ab " * 300_000}, timeout=60)
    assert r.status_code == 200 and len(r.json()) >= 300_000


# --- 500s that were client errors ------------------------------------------------------------------------------

def test_chat_part_with_a_numeric_type_is_422(server):
    body = {"messages": [{"role": "user", "content": [{"type": 5, "text": "x"}]}]}
    check_error(requests.post(server.url + "/v1/chat/completions", json=body, timeout=30), 422)
    body = {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": 7}}
    check_error(requests.post(server.url + "/v1/chat/completions", json=body, timeout=30), 422)


def test_stream_null_on_the_compat_route_is_not_streaming(server):
    r = requests.post(server.url + "/", json={"inputs": "hi", "stream": None, "parameters": {"max_new_tokens": 2}},
                      timeout=30)
    assert r.status_code == 200, r.text
    assert "generated_text" in r.json()[0]


# --- adapter configs and ids -----------------------------------------------------------------------------------

def adapter_with(tmp_path, name, **config):
    d = tmp_path / name
    shutil.copytree(ATTN, d)
    cfg = json.loads((d / "adapter_config.json").read_text())
    cfg.update(config)
    (d / "adapter_config.json").write_text(json.dumps(cfg))
    return d


@pytest.fixture
def adapters_server(start_server, tmp_path):
    for name, cfg in {"dora-int": {"use_dora": 1}, "bias-str": {"lora_bias": "yes"}, "r-wraps": {"r": 2**32 + 8},
                      "alpha-huge": {"lora_alpha": 1e308}, "regex-bomb": {"rank_pattern": {"(\\w|\\w|\\.)*\\d\\d\\d\\d": 4}},
                      "good": {}}.items():
        adapter_with(tmp_path / "root", name, **cfg)
    outside = tmp_path / "outside"
    shutil.copytree(ATTN, outside)
    linked = tmp_path / "root" / "linked"
    linked.mkdir()
    (linked / "adapter_config.json").symlink_to(outside / "adapter_config.json")
    (linked / "adapter_model.safetensors").symlink_to(outside / "adapter_model.safetensors")
    s = start_server("--adapter-dir", tmp_path / "root", *LLAMA, model=MODELS / "llama")
    s.root = tmp_path / "root"
    return s


@pytest.mark.parametrize("name,words", [
    ("dora-int", ["use_dora", "boolean"]),
    ("bias-str", ["lora_bias", "boolean"]),
    ("r-wraps", ["`r`"]),
    ("alpha-huge", ["lora_alpha"]),
    ("regex-bomb", ["too costly to match"]),  # std::regex backtracked for minutes on a loader thread
])
def test_bad_adapter_configs_are_422(adapters_server, name, words):
    check_error(gen(adapters_server, adapter_id=name, max_new_tokens=2), 422, words=words)


def test_adapter_ids_are_checked(adapters_server, tmp_path):
    s = adapters_server
    assert gen(s, adapter_id="good", max_new_tokens=2).status_code == 200
    # A NUL used to alias `good`; control characters, spaces and overlong ids are refused before any load.
    for bad in ["good\x00/../../x", "good\n", "go od", "g" * 513, "caf\u00e9"]:
        check_error(gen(s, adapter_id=bad, max_new_tokens=2), 422, words=["adapter id"])
    # A relative `local` id would resolve against the server's working directory.
    check_error(gen(s, adapter_id="root/good", adapter_source="local", max_new_tokens=2), 422, words=["absolute"])
    # Files that are links out of the roots are refused; no path of this machine appears in the answer.
    r = gen(s, adapter_id="linked", max_new_tokens=2)
    check_error(r, 403, "validation" if r.status_code != 403 else r.json()["error_type"], words=["outside"])
    assert str(tmp_path) not in r.json()["error"]
    r = gen(s, adapter_id=str(tmp_path / "elsewhere"), adapter_source="local", max_new_tokens=2)
    assert r.status_code == 403 and str(tmp_path) not in r.json()["error"].replace(str(tmp_path / "elsewhere"), "")
    info = requests.get(s.url + "/info", timeout=10).json()
    assert str(s.root) not in json.dumps(info)


def test_a_loaded_adapter_is_not_handed_to_other_credentials(adapters_server):
    s = adapters_server
    assert gen(s, adapter_id="good", api_token="alice", max_new_tokens=2).status_code == 200
    check_error(gen(s, adapter_id="good", max_new_tokens=2), 403, words=["other credentials"])
    check_error(gen(s, adapter_id="good", api_token="mallory", max_new_tokens=2), 403, words=["other credentials"])
    assert gen(s, adapter_id="good", api_token="alice", max_new_tokens=2).status_code == 200


def test_failed_adapter_ids_leave_no_metric_series(adapters_server):
    s = adapters_server
    for i in range(5):
        assert gen(s, adapter_id=f"no-such-{i}", max_new_tokens=2).status_code == 404
    assert gen(s, adapter_id="good", max_new_tokens=2).status_code == 200
    series = [l for l in s.metrics().splitlines() if l.startswith("lorax_adapter_requests_total{")]
    assert series == ['lorax_adapter_requests_total{adapter_id="good"} 1'], series


# --- SSRF ------------------------------------------------------------------------------------------------------

def test_client_named_urls_reach_only_allowed_hosts(start_server, files, tmp_path):
    s = start_server("--adapter-cache-dir", tmp_path / "cache", *LLAMA, model=MODELS / "llama")
    url = files.url + "/files/llama/attn-r8"
    for source in ["url", None]:  # the id alone looks like a URL
        p = {"adapter_id": url, "max_new_tokens": 2, **({"adapter_source": source} if source else {})}
        r = requests.post(s.url + "/generate", json={"inputs": "hi", "parameters": p}, timeout=30)
        check_error(r, 403, r.json().get("error_type"), words=["127.0.0.1", "--adapter-url-allow"])
    r = requests.post(s.url + "/v1/completions", json={"prompt": "hi", "model": url}, timeout=30)
    assert r.status_code == 403, r.text
    # The cloud metadata service and private ranges are refused without a connection attempt.
    for target in ["http://169.254.169.254/latest/", "http://10.1.2.3/a", "http://[::1]:9/a", "http://0x7f000001/a"]:
        r = gen(s, adapter_id=target, adapter_source="url", max_new_tokens=2)
        assert r.status_code == 403, (target, r.text)
    assert files.log == [], "the server fetched a client-named internal URL"


def test_allowed_host_loads_and_redirects_stay_on_it(start_server, files, tmp_path):
    port = files.httpd.server_address[1]
    # 127.0.0.2 (also loopback) redirects to the allowed file server: refused unless named too.
    hops = []

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hops.append((self.path, self.headers.get("Authorization")))
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{port}/files/llama/attn-r8/" + self.path.rsplit("/", 1)[1])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    redirector = http.server.ThreadingHTTPServer(("127.0.0.2", 0), Redirect)
    threading.Thread(target=redirector.serve_forever, daemon=True).start()
    rport = redirector.server_address[1]
    try:
        s = start_server("--adapter-cache-dir", tmp_path / "cache", "--adapter-url-allow", f"127.0.0.2:{rport}",
                         *LLAMA, model=MODELS / "llama")
        r = gen(s, adapter_id=f"http://127.0.0.2:{rport}/x", adapter_source="url", api_token="tok", max_new_tokens=2)
        check_error(r, 403, r.json().get("error_type"), words=["redirect"])
        assert files.log == [] and hops and hops[0][1] == "Bearer tok"
        s.stop()
        hops.clear()
        s = start_server("--adapter-cache-dir", tmp_path / "cache2", "--adapter-url-allow", f"127.0.0.2:{rport}",
                         "--adapter-url-allow", "127.0.0.1", *LLAMA, model=MODELS / "llama")
        r = gen(s, adapter_id=f"http://127.0.0.2:{rport}/x", adapter_source="url", api_token="tok", max_new_tokens=2)
        assert r.status_code == 200, r.text
        # The token went to the host it was meant for, not to the one redirected to.
        assert all(a is None for _, a in files.log) and len(files.log) == 2
    finally:
        redirector.shutdown()


def test_bad_allow_entries_are_refused_at_start(engine_bin):
    p = subprocess.run([str(engine_bin), "serve", "--model", str(MODELS / "llama"), "--adapter-url-allow",
                        "10.0.0.0/33"], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "--adapter-url-allow" in p.stderr


# --- auth ------------------------------------------------------------------------------------------------------

def test_bearer_scheme_is_case_insensitive_and_metrics_can_be_closed(start_server):
    s = start_server("--api-key", "k3y")
    for auth, ok in [("Bearer k3y", True), ("bearer k3y", True), ("BEARER k3y", True), ("Bearer k3", False),
                     ("Bearer k3yy", False), ("Basic k3y", False), ("k3y", False)]:
        r = requests.post(s.url + "/generate", json={"inputs": "hi", "parameters": {"max_new_tokens": 1}},
                          headers={"Authorization": auth}, timeout=30)
        assert r.status_code == (200 if ok else 401), (auth, r.text)
    assert requests.get(s.url + "/metrics", timeout=10).status_code == 200  # open by default (Prometheus)
    assert requests.get(s.url + "/health", timeout=10).status_code == 200
    s.stop()
    s = start_server("--api-key", "k3y", "--metrics-require-key")
    assert requests.get(s.url + "/metrics", timeout=10).status_code == 401
    assert requests.get(s.url + "/metrics", headers={"Authorization": "Bearer k3y"}, timeout=10).status_code == 200


# --- model configs ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("change,words", [
    ({"rms_norm_eps": -1}, "epsilon"),
    ({"rope_parameters": None, "rope_theta": 0}, "rope_theta"),
    ({"rope_parameters": None, "rope_scaling": {"rope_type": "linear", "factor": 0}}, "factor"),
    ({"rope_parameters": {"rope_type": "llama3", "rope_theta": 1e4, "factor": 8, "low_freq_factor": 4,
                          "high_freq_factor": 4, "original_max_position_embeddings": 64}}, "low_freq_factor"),
    ({"vocab_size": 2**32 + 8}, "vocab_size"),
])
def test_non_physical_model_configs_are_refused_at_load(engine_bin, tmp_path, change, words):
    d = tmp_path / "model"
    d.mkdir()
    for f in (MODELS / "llama").iterdir():
        os.symlink(f, d / f.name)
    (d / "config.json").unlink()
    cfg = json.loads((MODELS / "llama" / "config.json").read_text())
    cfg.update(change)
    (d / "config.json").write_text(json.dumps(cfg))
    p = subprocess.run([str(engine_bin), "generate", "--model", str(d), "--prompt", "hi", "--max-new-tokens", "2"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and words in p.stderr, p.stderr


# --- admission -------------------------------------------------------------------------------------------------

def test_a_burst_is_admitted_up_to_max_waiting_requests(start_server):
    # Jobs the engine thread had taken but not admitted were not counted: a burst reached about twice the limit.
    from concurrent.futures import ThreadPoolExecutor
    s = start_server("--max-running", "1", "--max-waiting-requests", "8", "--max-total-tokens", "16384",
                     "--kv-cache-tokens", "20000")
    long_body = {"inputs": "hello", "parameters": {"max_new_tokens": 16000, "ignore_eos_token": True}}
    running = requests.post(s.url + "/generate_stream", json=long_body, stream=True, timeout=120)
    lines = running.iter_lines()
    while not next(lines).startswith(b"data:"):
        pass
    with ThreadPoolExecutor(64) as pool:
        futures = [pool.submit(requests.post, s.url + "/generate",
                               json={"inputs": f"burst {i}", "parameters": {"max_new_tokens": 2}}, timeout=120)
                   for i in range(64)]
        deadline = time.time() + 30
        while sum(f.done() for f in futures) < 64 - 8 and time.time() < deadline:
            time.sleep(0.05)
        running.close()
        codes = sorted(f.result().status_code for f in futures)
    assert codes.count(200) == 8 and codes.count(429) == 56, codes
    assert s.stop() == 0


# --- connections -----------------------------------------------------------------------------------------------

def test_connection_close_is_honoured(server):
    port = int(server.url.rsplit(":", 1)[1])
    body = json.dumps({"inputs": "hi", "parameters": {"max_new_tokens": 2}}).encode()
    post = b"POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n" \
           b"Content-Length: %d\r\n\r\n%s"
    for raw in [b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"GET /health HTTP/1.0\r\n\r\n",
                b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                post % (b"/generate", len(body), body),
                post % (b"/generate", 2, b"{}")]:
        data = read_until_closed(port, raw)
        assert data is not None, f"socket left open after {raw[:40]!r}"
        assert data.startswith(b"HTTP/1.") and (b"0\r\n\r\n" in data or b"Content-Length" in data), data[:200]


def test_idle_connections_are_reaped_but_streams_are_not(start_server):
    s = start_server("--keepalive-timeout-s", "1", "--max-total-tokens", "16384", "--kv-cache-tokens", "20000")
    port = int(s.url.rsplit(":", 1)[1])
    t0 = time.time()
    data = read_until_closed(port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n", timeout=10)
    assert data is not None and b"200 OK" in data and time.time() - t0 < 5
    # A stream that lasts longer than the keep-alive timeout is not cut.
    t0 = time.time()
    r = requests.post(s.url + "/generate_stream", stream=True, timeout=120,
                      json={"inputs": "hi", "parameters": {"max_new_tokens": 6000, "ignore_eos_token": True}})
    events = [l for l in r.iter_lines() if l.startswith(b"data:")]
    assert len(events) == 6000 and b"generated_text" in events[-1]
    assert s.stop() == 0


# --- non-finite logits -----------------------------------------------------------------------------------------

def test_nan_logits_fail_the_request_instead_of_emitting_tokens(start_server, tmp_path):
    from safetensors.numpy import load_file, save_file
    import numpy as np
    d = tmp_path / "nan-model"
    d.mkdir()
    for f in (MODELS / "llama").iterdir():
        if f.name != "model.safetensors":
            os.symlink(f, d / f.name)
    weights = load_file(str(MODELS / "llama" / "model.safetensors"))
    norm = "model.norm.weight"
    weights[norm] = np.full_like(weights[norm], np.nan)
    save_file(weights, str(d / "model.safetensors"))
    s = start_server(*LLAMA, model=d)
    r = gen(s, max_new_tokens=4, details=True)
    check_error(r, 424, "generation", words=["non-finite logits"])
    r = requests.post(s.url + "/generate_stream", json={"inputs": "hi", "parameters": {"max_new_tokens": 4}},
                      stream=True, timeout=60)
    events = [json.loads(l[5:]) for l in r.iter_lines() if l.startswith(b"data:")]
    assert events and "non-finite logits" in events[-1]["error"] and not any("token" in e for e in events), events
    r = gen(s, max_new_tokens=4, do_sample=True, temperature=0.7)
    check_error(r, 424, "generation", words=["non-finite logits"])
    assert requests.get(s.url + "/health", timeout=10).status_code == 200


def test_batch_gauge_follows_cancellations(start_server):
    # A cancelled request left the engine idle with stale stats: lorax_batch_current_size stayed at 1.
    s = start_server("--max-total-tokens", "16384", "--kv-cache-tokens", "20000")
    r = requests.post(s.url + "/generate_stream", stream=True, timeout=120,
                      json={"inputs": "hi", "parameters": {"max_new_tokens": 16000, "ignore_eos_token": True}})
    lines = r.iter_lines()
    while not next(lines).startswith(b"data:"):
        pass
    assert s.metric("lorax_batch_current_size") == 1
    r.close()
    deadline = time.time() + 20
    while s.metric("lorax_batch_current_size") != 0 and time.time() < deadline:
        time.sleep(0.05)
    assert s.metric("lorax_batch_current_size") == 0 and s.metric("lorax_kv_cache_usage_ratio") == 0
    assert s.stop() == 0
