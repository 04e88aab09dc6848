"""/metrics passes `promtool check metrics` (the Prometheus project's own linter) and parses with
prometheus_client; counters move as requests are served; a client that disconnects mid-stream has its request
cancelled and its KV blocks freed; SIGTERM drains in-flight requests and exits 0."""
import json
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

LORAX_NAMES = ["lorax_request_count", "lorax_request_success", "lorax_request_failure", "lorax_request_duration",
               "lorax_request_queue_duration", "lorax_request_inference_duration",
               "lorax_request_mean_time_per_token_duration", "lorax_request_input_length",
               "lorax_request_generated_tokens", "lorax_batch_current_size", "lorax_queue_size",
               "lorax_kv_cache_usage_ratio", "lorax_kv_cache_blocks_free", "lorax_preemptions",
               "lorax_request_time_to_first_token_duration", "lorax_request_inter_token_latency_duration"]


def wait_for(cond, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_promtool_accepts_metrics(server):
    requests.post(server.url + "/generate", json={"inputs": "warm up", "parameters": {"max_new_tokens": 3}})
    text = server.metrics()
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing (Debian package prometheus)"
    res = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    families = {f.name for f in text_string_to_metric_families(text)}  # the client drops counters' _total
    assert set(LORAX_NAMES) <= families, set(LORAX_NAMES) - families


def test_counters_move(server):
    before = {n: server.metric(n) for n in ("lorax_request_count_total", "lorax_request_success_total",
                                            "lorax_request_duration_count", "lorax_request_generated_tokens_sum")}
    for i in range(3):
        r = requests.post(server.url + "/generate", json={"inputs": f"count {i}", "parameters": {
            "max_new_tokens": 5, "ignore_eos_token": True}})
        assert r.ok
    requests.post(server.url + "/generate", json={"inputs": ""})  # a failure
    after = {n: server.metric(n) for n in before}
    assert after["lorax_request_count_total"] - before["lorax_request_count_total"] == 4
    assert after["lorax_request_success_total"] - before["lorax_request_success_total"] == 3
    assert after["lorax_request_duration_count"] - before["lorax_request_duration_count"] == 3
    assert after["lorax_request_generated_tokens_sum"] - before["lorax_request_generated_tokens_sum"] == 15
    assert server.metric("lorax_kv_cache_usage_ratio") == 0


def health_status(url):
    try:
        return requests.get(url + "/health", timeout=5).status_code
    except requests.ConnectionError:
        return None


def test_disconnect_mid_stream_frees_kv_blocks(start_server):
    # A request far too long to finish during the test on any machine: only the disconnect can end it.
    server = start_server("--max-total-tokens", "16384", "--kv-cache-tokens", "20000")
    free_before = server.metric("lorax_kv_cache_blocks_free")
    cancelled_before = server.metric("lorax_request_cancelled_total")
    success_before = server.metric("lorax_request_success_total")
    body = json.dumps({"inputs": "a long story", "parameters": {"max_new_tokens": 16000, "ignore_eos_token": True}})
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(f"POST /generate_stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
    received = b""
    while received.count(b"data:") < 3:
        chunk = sock.recv(65536)
        assert chunk, "stream ended early"
        received += chunk
    assert received.startswith(b"HTTP/1.1 200")
    assert server.metric("lorax_kv_cache_usage_ratio") > 0  # the stream holds blocks
    sock.close()  # the client goes away mid-stream
    assert wait_for(lambda: server.metric("lorax_kv_cache_usage_ratio") == 0), server.metrics()
    assert server.metric("lorax_kv_cache_blocks_free") == free_before
    assert server.metric("lorax_request_cancelled_total") == cancelled_before + 1
    assert server.metric("lorax_request_success_total") == success_before

    # The same for a client of plain /generate that gives up waiting.
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(f"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
    assert wait_for(lambda: server.metric("lorax_kv_cache_usage_ratio") > 0)
    sock.close()
    assert wait_for(lambda: server.metric("lorax_kv_cache_usage_ratio") == 0), server.metrics()
    assert server.metric("lorax_request_cancelled_total") == cancelled_before + 2
    assert server.metric("lorax_request_success_total") == success_before
    assert server.stop() == 0


def test_graceful_shutdown_finishes_in_flight_requests(start_server):
    # Long enough to be in flight when SIGTERM arrives (~2 s on an idle core), with time to finish it.
    s = start_server("--max-total-tokens", "8192", "--shutdown-timeout-s", "300")
    n = 6000
    body = {"inputs": "finish me", "parameters": {"max_new_tokens": n, "ignore_eos_token": True}}
    streaming, events = threading.Event(), []

    def client():
        with requests.post(s.url + "/generate_stream", json=body, stream=True, timeout=120) as r:
            assert r.status_code == 200, r.text
            for line in r.iter_lines():
                if line.startswith(b"data:"):
                    events.append(json.loads(line[5:]))
                    streaming.set()

    t = threading.Thread(target=client)
    t.start()
    assert streaming.wait(30)
    s.proc.send_signal(signal.SIGTERM)
    # While draining: not healthy, no new work.
    assert wait_for(lambda: health_status(s.url) == 503, timeout=5)
    r = requests.post(s.url + "/generate", json={"inputs": "late", "parameters": {"max_new_tokens": 2}})
    assert r.status_code == 503 and r.json()["error_type"] == "overloaded"
    t.join(300)
    assert len(events) == n and events[-1]["details"]["generated_tokens"] == n
    assert s.proc.wait(60) == 0


def test_shutdown_deadline_cancels_and_exits_zero(start_server):
    s = start_server("--shutdown-timeout-s", "0.5", "--max-total-tokens", "16384", "--kv-cache-tokens", "40000")
    body = {"inputs": "never finishes", "parameters": {"max_new_tokens": 16000, "ignore_eos_token": True}}
    result, events = {}, []
    plain = threading.Thread(target=lambda: result.update(resp=requests.post(s.url + "/generate", json=body,
                                                                              timeout=120)))

    def streamer():
        with requests.post(s.url + "/generate_stream", json=body, stream=True, timeout=120) as r:
            for line in r.iter_lines():
                if line.startswith(b"data:"):
                    events.append(json.loads(line[5:]))

    streaming = threading.Thread(target=streamer)
    plain.start()
    streaming.start()
    assert wait_for(lambda: s.metric("lorax_batch_current_size") >= 2 and len(events) > 0)
    start = time.time()
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(30) == 0
    assert time.time() - start < 10
    plain.join(30)
    streaming.join(30)
    assert result["resp"].status_code == 503 and result["resp"].json()["error_type"] == "overloaded"
    # The cut stream ends with an error event, which lorax-client raises as OverloadedError.
    assert events[-1]["error_type"] == "overloaded" and "token" in events[-2]
