"""64 concurrent requests with different prompts, lengths and sampling settings each return exactly what the
same request returns when it runs alone (greedy, or sampling with a fixed seed) — also with a KV cache so small
that the scheduler must preempt (recompute) sequences, which the metrics must show."""
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

WORDS = ("the quick brown fox jumps over the lazy dog paged attention keeps key value cache blocks "
         "continuous batching mixes prefills decodes low rank adapters add small update").split()


def make_requests(n, max_new):
    reqs = []
    for i in range(n):
        words = WORDS[i % len(WORDS):] + WORDS[:i % len(WORDS)]
        prompt = " ".join(words[: 2 + (i * 7) % 17])
        params = {"max_new_tokens": 4 + (i * 5) % max_new, "details": True, "ignore_eos_token": i % 3 == 0}
        if i % 4 == 1:
            params.update(do_sample=True, seed=1000 + i, temperature=0.8, top_k=20)
        elif i % 4 == 2:
            params.update(do_sample=True, seed=7 * i, top_p=0.9, repetition_penalty=1.2)
        elif i % 4 == 3:
            params.update(frequency_penalty=0.5, stop=["e"])
        reqs.append({"inputs": prompt, "parameters": params})
    return reqs


def post(url, body):
    r = requests.post(url + "/generate", json=body, timeout=300)
    assert r.status_code == 200, r.text
    return r.json()


def stream(url, body):
    """The token ids and text of a /generate_stream response."""
    ids, text = [], None
    with requests.post(url + "/generate_stream", json=body, stream=True, timeout=300) as r:
        assert r.status_code == 200, r.text
        for line in r.iter_lines():
            line = line.decode("utf-8")
            if line.startswith("data:"):
                ev = json.loads(line[5:])
                ids.append(ev["token"]["id"])
                text = ev["generated_text"] if ev["generated_text"] is not None else text
    return ids, text


def check_concurrent_equals_alone(url, reqs):
    t0 = time.time()
    alone = [post(url, b) for b in reqs]
    t1 = time.time()
    with ThreadPoolExecutor(len(reqs)) as pool:
        # Half of the clients stream, half wait for the whole body.
        futures = [pool.submit(stream if i % 2 else post, url, b) for i, b in enumerate(reqs)]
        together = [f.result() for f in futures]
    print(f"alone {t1 - t0:.2f}s, concurrent {time.time() - t1:.2f}s")
    for i, (a, t) in enumerate(zip(alone, together)):
        a_ids = [tok["id"] for tok in a["details"]["tokens"]]
        if i % 2:
            assert t == (a_ids, a["generated_text"]), f"request {i} differs: {reqs[i]}"
            continue
        # Same tokens and text; log-probs agree to float32 rounding (batch shapes change the GEMM blocking).
        assert [tok["id"] for tok in t["details"]["tokens"]] == a_ids, f"request {i} differs: {reqs[i]}"
        assert t["generated_text"] == a["generated_text"]
        assert t["details"]["finish_reason"] == a["details"]["finish_reason"]
        assert t["details"]["seed"] == a["details"]["seed"]
        for x, y in zip(t["details"]["tokens"], a["details"]["tokens"]):
            assert x["logprob"] == pytest.approx(y["logprob"], abs=1e-3)


def test_64_concurrent_requests_match_alone(server):
    check_concurrent_equals_alone(server.url, make_requests(64, 40))
    assert server.metric("lorax_kv_cache_usage_ratio") == 0


def test_64_concurrent_requests_with_preemption(start_server):
    # 16 blocks of 16 tokens: a handful of sequences fill it, so running ones are preempted and recomputed.
    s = start_server("--kv-cache-tokens", "256", "--block-size", "16", "--max-total-tokens", "128",
                     "--max-input-length", "64", "--max-waiting-requests", "256")
    before = s.metric("lorax_preemptions_total")
    check_concurrent_equals_alone(s.url, make_requests(64, 60))
    assert s.metric("lorax_preemptions_total") > before
    assert s.metric("lorax_kv_cache_usage_ratio") == 0
    assert s.stop() == 0
