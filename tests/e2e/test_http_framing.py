"""Issue 14's probes below the REST handler, answered by the connection guard (engine/server/connection_guard.cpp)
before Pistache's parser sees the bytes: a malformed Content-Length (a plain-text 500 echoing an exception before),
two Authorization headers (the first one won before), oversized header blocks, and the open-connection cap (idle
sockets under `ulimit -n 256` made /health hang for 65 s before)."""
import json
import resource
import socket
import subprocess
import time

import pytest
import requests

from raw_http import read_until_closed

TOKENIZE = b'{"inputs": "hi"}'


def post(path, body, *headers, length=None):
    head = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" % path
    head += b"".join(h + b"\r\n" for h in headers)
    if length is not False:
        head += b"Content-Length: %s\r\n" % (str(len(body)).encode() if length is None else length)
    return head + b"\r\n" + body


def parse(data):
    """(status, headers dict lower-cased, body bytes) of one HTTP/1.1 response with a Content-Length."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    return int(lines[0].split()[1]), headers, body[:int(headers["content-length"])]


def check_refused(data, status, words, error_type="validation"):
    assert data is not None, "the connection was left open"
    code, headers, body = parse(data)
    assert code == status, data
    assert headers["content-type"] == "application/json" and headers["connection"] == "close", headers
    err = json.loads(body)
    assert set(err) == {"error", "error_type"} and err["error_type"] == error_type and words in err["error"], err


@pytest.mark.parametrize("length,status,words", [
    (b"-1", 400, "decimal number"),                     # Pistache: 500 "basic_string::_M_create"
    (b"99999999999999999999", 413, "exceeds"),          # Pistache: 500 "stoull"
    (b"12abc", 400, "decimal number"),
    (b"", 400, "decimal number"),
    (b"0x10", 400, "decimal number"),
    (b"%d" % (16 << 20 | 1), 413, "exceeds 16777216 bytes"),
])
def test_malformed_content_length_is_a_json_error(server, length, status, words):
    check_refused(read_until_closed(server.port, post(b"/generate", b"{}", length=length)), status, words)
    assert requests.get(server.url + "/health", timeout=10).status_code == 200


@pytest.mark.parametrize("headers,words", [
    ((b"Content-Length: 2", b"Content-Length: 2"), "more than one Content-Length"),
    ((b"Content-Length: 2", b"Transfer-Encoding: chunked"), "both Content-Length and Transfer-Encoding"),
    ((b"Content-Length : 2",), "whitespace"),
    ((b"Content-Length: 2", b" folded"), "folding"),
    ((b"Content-Length: 2", b"no colon here"), "no colon"),
])
def test_ambiguous_framing_is_refused(server, headers, words):
    check_refused(read_until_closed(server.port, post(b"/generate", b"{}", *headers, length=False)), 400, words)


def test_a_header_block_over_64_kib_is_431(server):
    big = b"X-Filler: " + b"a" * (70 << 10)
    check_refused(read_until_closed(server.port, post(b"/tokenize", TOKENIZE, big)), 431, "header block")
    # Also while it is still arriving (no blank line yet): refused as soon as it is too big.
    s = socket.create_connection(("127.0.0.1", server.port))
    s.settimeout(5)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" + big)
    data = s.recv(65536)
    s.close()
    check_refused(data, 431, "header block")


def test_two_authorization_headers_are_refused(start_server):
    s = start_server("--api-key", "sekret")
    right, wrong = b"Authorization: Bearer sekret", b"Authorization: Bearer wrong"
    for pair in [(right, wrong), (wrong, right), (right, right)]:  # (right, wrong) answered 200 before
        check_refused(read_until_closed(s.port, post(b"/tokenize", TOKENIZE, *pair)), 400, "more than one Authorization")
    code, _, body = parse(read_until_closed(s.port, post(b"/tokenize", TOKENIZE, right, b"Connection: close")))
    assert code == 200 and isinstance(json.loads(body), list)
    assert parse(read_until_closed(s.port, post(b"/tokenize", TOKENIZE, wrong, b"Connection: close")))[0] == 401


def test_requests_in_pieces_and_on_one_connection_are_answered(server):
    """The guard holds a header block back until it is complete; bodies and keep-alive requests still flow."""
    req = post(b"/tokenize", TOKENIZE, b"Connection: keep-alive")
    s = socket.create_connection(("127.0.0.1", server.port))
    s.settimeout(10)
    answers = []
    for chunking in [len(req), 7, 1, req.index(b"\r\n\r\n") + 4]:  # whole, 7 bytes, 1 byte, head then body
        for i in range(0, len(req), chunking):
            s.sendall(req[i:i + chunking])
            time.sleep(0.002)
        data = b""
        while b"\r\n\r\n" not in data or len(parse(data)[2]) < int(parse(data)[1]["content-length"]):
            data += s.recv(65536)
        answers.append(parse(data))
    s.close()
    assert [a[0] for a in answers] == [200] * 4 and len({a[2] for a in answers}) == 1, answers


def metric(url, name):
    for line in requests.get(url + "/metrics", timeout=10, headers={"Connection": "close"}).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_open_connections_are_capped_with_503(start_server):
    s = start_server("--max-connections", "8")
    idle = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(8)]
    time.sleep(0.3)
    check_refused(read_until_closed(s.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"), 503, "too many open connections",
                  "overloaded")
    for c in idle:
        c.close()
    deadline = time.time() + 10
    while time.time() < deadline:
        r = requests.get(s.url + "/health", timeout=10, headers={"Connection": "close"})
        if r.status_code == 200:
            break
        time.sleep(0.05)
    assert r.status_code == 200
    assert metric(s.url, "lorax_http_connections_refused_total") >= 1
    # Closed connections are no longer counted: only the one asking (and perhaps the /health one closing).
    assert metric(s.url, "lorax_http_connections") <= 2
    assert s.stop() == 0


def nofile(n):
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


def test_idle_sockets_under_a_descriptor_limit_do_not_hang_health(start_server):
    s = start_server(preexec_fn=nofile(256))  # the default cap becomes 256 - 128 descriptors kept for files
    idle = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(222)]
    try:
        time.sleep(0.5)
        t0 = time.time()
        data = read_until_closed(s.port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=5)
        assert data is not None and time.time() - t0 < 2, "/health hung"
        check_refused(data, 503, "the server allows 128", "overloaded")
    finally:
        for c in idle:
            c.close()
    time.sleep(0.5)
    assert requests.get(s.url + "/health", timeout=5).status_code == 200
    assert s.stop() == 0


def test_a_cap_the_descriptor_limit_cannot_hold_is_refused_at_start(engine_bin, model_dir):
    p = subprocess.run([str(engine_bin), "serve", "--model", str(model_dir), "--port", "0", "--max-connections",
                        "1000"], capture_output=True, text=True, timeout=60, preexec_fn=nofile(256))
    assert p.returncode == 2 and "--max-connections 1000" in p.stderr and "ulimit -n" in p.stderr, p.stderr
    for bad in ["0", "-3"]:
        p = subprocess.run([str(engine_bin), "serve", "--model", str(model_dir), "--max-connections", bad],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and "--max-connections must be positive" in p.stderr, p.stderr
