"""Untrusted JSON bodies cannot crash the server or pin an HTTP thread (issue 14's probes): a body nested 100,000
deep (inside an unknown /generate field, inside `parameters`, in chat messages, in POST /adapters) used to kill
the server (a recursive dump overflowing the stack); an object of 80,000 keys cost seconds of quadratic work.
Both are now a 422 naming the limit, answered at once, and the server keeps serving."""
import time

import requests


def deep(n):
    return "[" * n + "]" * n


def test_deep_nesting_is_refused_and_the_server_survives(server):
    bodies = [
        ("/generate", '{"inputs": "hi", "extra": ' + deep(100000) + "}"),
        ("/generate", '{"inputs": "hi", "parameters": {"stop": ' + deep(100000) + "}}"),
        ("/generate_stream", '{"inputs": "hi", "parameters": ' + "{\"a\": " * 50000 + "1" + "}" * 50000 + "}"),
        ("/v1/chat/completions", '{"model": "x", "messages": [{"role": "user", "content": ' + deep(100000) + "}]}"),
        ("/v1/completions", '{"model": "x", "prompt": "hi", "tools": ' + deep(100000) + "}"),
        ("/tokenize", '{"inputs": ' + deep(100000) + "}"),
        ("/adapters", '{"adapter_id": ' + deep(100000) + "}"),
    ]
    for path, body in bodies:
        r = requests.post(server.url + path, data=body, headers={"Content-Type": "application/json"}, timeout=30)
        assert r.status_code == 422, (path, r.status_code, r.text[:200])
        assert "deeper than 64" in r.json()["error"] and len(r.text) < 500, r.text[:200]
    assert requests.get(server.url + "/health", timeout=5).status_code == 200
    # Nesting within the limit is still JSON like any other: an ordinary request works.
    r = requests.post(server.url + "/generate", json={"inputs": "hi", "parameters": {"max_new_tokens": 2}}, timeout=30)
    assert r.status_code == 200, r.text


def test_an_object_of_many_keys_is_refused_at_once(server):
    body = '{"inputs": "hi", "parameters": {' + ",".join(f'"k{i}": 1' for i in range(80000)) + "}}"
    t0 = time.time()
    r = requests.post(server.url + "/generate", data=body, headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 422 and "more than 10000 members" in r.json()["error"], r.text[:200]
    assert time.time() - t0 < 2
    # Strings full of brackets and commas are content, not structure.
    text = "[{,]}" * 3000
    r = requests.post(server.url + "/tokenize", json={"inputs": text}, timeout=30)
    assert r.status_code == 200, r.text[:200]
