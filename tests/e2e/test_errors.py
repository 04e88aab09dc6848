"""Every bad input gets its documented status code and `{"error", "error_type"}` body (DESIGN.md §4), and the
server stays healthy afterwards."""
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests


def check_error(resp, status, error_type):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error", "error_type"} and body["error_type"] == error_type
    assert isinstance(body["error"], str) and body["error"]


GEN = "/generate"


@pytest.mark.parametrize("path", ["/generate", "/generate_stream", "/v1/completions", "/v1/chat/completions", "/"])
@pytest.mark.parametrize("raw", ["{not json", "", "[1, 2]", '"a string"', "null"])
def test_malformed_bodies_are_422(server, path, raw):
    r = requests.post(server.url + path, data=raw, headers={"Content-Type": "application/json"}, timeout=30)
    check_error(r, 422, "validation")


@pytest.mark.parametrize("body", [
    {"inputs": 5},
    {"inputs": ""},
    {"parameters": {"max_new_tokens": 5}},
    {"inputs": "x", "parameters": {"max_new_tokens": "ten"}},
    {"inputs": "x", "parameters": {"max_new_tokens": 0}},
    {"inputs": "x", "parameters": {"max_new_tokens": 1.5}},
    {"inputs": "x", "parameters": {"max_new_tokens": 5000}},  # > --max-total-tokens 2048
    {"inputs": "x", "parameters": {"temperature": -0.5}},
    {"inputs": "x", "parameters": {"temperature": 0}},
    {"inputs": "x", "parameters": {"top_p": 1.5}},
    {"inputs": "x", "parameters": {"top_k": -3}},
    {"inputs": "x", "parameters": {"typical_p": 0}},
    {"inputs": "x", "parameters": {"repetition_penalty": -1}},
    {"inputs": "x", "parameters": {"frequency_penalty": 3}},
    {"inputs": "x", "parameters": {"seed": -1}},
    {"inputs": "x", "parameters": {"stop": "not-a-list"}},
    {"inputs": "x", "parameters": {"do_sample": "yes"}},
    {"inputs": "x", "parameters": {"best_of": 2}},
    {"inputs": "x", "parameters": {"truncate": -1}},
    {"inputs": "x", "parameters": {"no_such_parameter": 1}},
    {"inputs": "x", "parameters": "not an object"},
    {"inputs": "x", "stream": "yes"},
])
def test_invalid_generate_requests_are_422(server, body):
    check_error(requests.post(server.url + GEN, json=body, timeout=30), 422, "validation")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinite_sampling_params_are_422(server, literal):
    raw = '{"inputs": "x", "parameters": {"temperature": %s}}' % literal
    r = requests.post(server.url + GEN, data=raw, headers={"Content-Type": "application/json"}, timeout=30)
    check_error(r, 422, "validation")
    # A float that parses but is absurd is refused too.
    check_error(requests.post(server.url + GEN, json={"inputs": "x", "parameters": {"top_p": -1e308}}), 422,
                "validation")


def test_prompt_longer_than_max_input_length(start_server):
    s = start_server("--max-total-tokens", "64", "--max-input-length", "16")
    long_prompt = " ".join(["the quick brown fox"] * 20)
    check_error(requests.post(s.url + GEN, json={"inputs": long_prompt}), 422, "validation")
    check_error(requests.post(s.url + "/v1/completions", json={"prompt": long_prompt}), 422, "validation")
    ok = requests.post(s.url + GEN, json={"inputs": long_prompt, "parameters": {"truncate": 10, "max_new_tokens": 3,
                                                                               "details": True}})
    assert ok.status_code == 200 and ok.json()["details"]["prompt_tokens"] == 10
    check_error(requests.post(s.url + GEN, json={"inputs": "x", "parameters": {"max_new_tokens": 64}}), 422,
                "validation")
    assert s.stop() == 0


def test_unknown_adapter_is_404(server):
    r = requests.post(server.url + GEN, json={"inputs": "x", "parameters": {"adapter_id": "org/missing"}})
    check_error(r, 404, "not_found")
    r = requests.post(server.url + "/generate_stream", json={"inputs": "x", "parameters": {"adapter_id": "nope"}})
    check_error(r, 404, "not_found")


def test_routes_and_methods(server):
    check_error(requests.get(server.url + "/no/such/route"), 404, "not_found")
    check_error(requests.post(server.url + "/embed", json={"inputs": "x"}), 404, "not_found")
    check_error(requests.get(server.url + GEN), 405, "validation")
    check_error(requests.post(server.url + "/info"), 405, "validation")
    check_error(requests.post(server.url + "/tokenize", json={"inputs": 3}), 422, "validation")


def test_server_survives_a_burst_of_garbage(server):
    bodies = [b"\x00\xff" * 100, b"{" * 5000, json.dumps({"inputs": "x" * 100000}).encode(), b'{"inputs": "\xc3"}']
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda b: requests.post(server.url + GEN, data=b, timeout=60).status_code, bodies * 4))
    assert set(codes) <= {422}, codes
    assert requests.get(server.url + "/health").status_code == 200
    assert requests.post(server.url + GEN, json={"inputs": "still alive", "parameters": {"max_new_tokens": 2}}).ok


def test_api_key(start_server):
    s = start_server("--api-key", "s3cret")
    body = {"inputs": "hello", "parameters": {"max_new_tokens": 2}}
    check_error(requests.post(s.url + GEN, json=body), 401, "unauthorized")
    check_error(requests.post(s.url + GEN, json=body, headers={"Authorization": "Bearer wrong"}), 401,
                "unauthorized")
    check_error(requests.get(s.url + "/v1/models"), 401, "unauthorized")
    assert requests.post(s.url + GEN, json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert requests.get(s.url + "/health").status_code == 200  # open for probes
    assert requests.get(s.url + "/metrics").status_code == 200
    import openai
    from lorax import Client
    assert Client(s.url, headers={"Authorization": "Bearer s3cret"}).generate("hello", max_new_tokens=2)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=s.url + "/v1", api_key="wrong").completions.create(model="m", prompt="x", max_tokens=2)
    assert s.stop() == 0


def test_full_queue_answers_429(start_server):
    # One running sequence and a waiting queue of one: with both taken, new requests are refused at once.
    s = start_server("--max-running", "1", "--max-waiting-requests", "1", "--max-total-tokens", "16384",
                     "--kv-cache-tokens", "20000")
    # Long enough to outlast the test on any machine; it is cancelled when its client leaves.
    long_body = {"inputs": "hello", "parameters": {"max_new_tokens": 16000, "ignore_eos_token": True}}
    running = requests.post(s.url + "/generate_stream", json=long_body, stream=True, timeout=120)
    assert running.status_code == 200
    lines = running.iter_lines()  # kept referenced: closing this generator would close the connection
    while not next(lines).startswith(b"data:"):  # wait until it is being generated
        pass
    queued = {}
    t = threading.Thread(target=lambda: queued.update(r=requests.post(
        s.url + GEN, json={"inputs": "queued", "parameters": {"max_new_tokens": 3}}, timeout=120)))
    t.start()
    deadline = time.time() + 20
    while s.metric("lorax_queue_size") < 1 and time.time() < deadline:
        time.sleep(0.02)
    assert s.metric("lorax_queue_size") == 1, (queued, s.metrics())
    for _ in range(5):
        check_error(requests.post(s.url + GEN, json={"inputs": "x", "parameters": {"max_new_tokens": 2}}), 429,
                    "overloaded")
        check_error(requests.post(s.url + "/v1/completions", json={"prompt": "x", "max_tokens": 2}), 429,
                    "overloaded")
    running.close()  # the long request's client leaves: it is cancelled and the queued one runs
    t.join(60)
    assert queued["r"].status_code == 200
    assert 'lorax_request_failure_total{err="overloaded"} 10' in s.metrics()
    assert s.stop() == 0


def test_serve_cli_errors(engine_bin, model_dir, server):
    import subprocess

    def run(*args):
        return subprocess.run([str(engine_bin), "serve", *map(str, args)], capture_output=True, text=True, timeout=60)

    for args, code in [((), 2), (("--model", model_dir, "--port", "70000"), 2),
                       (("--model", model_dir, "--max-waiting-requests", "0"), 2),
                       (("--model", model_dir, "--no-such-flag", "1"), 2),
                       (("--model", model_dir / "missing"), 1),
                       (("--model", model_dir, "--host", "127.0.0.1", "--port", server.port), 1)]:  # port taken
        res = run(*args)
        assert res.returncode == code, (args, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
