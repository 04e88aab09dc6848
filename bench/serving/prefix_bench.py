#!/usr/bin/env python3
"""Prefix-caching benchmark for `lorax-engine serve`: N concurrent streaming requests that share one long system
prompt (a few distinct words after it each), on one server with `--prefix-caching off` and one with `on`.

One request with the system prompt runs alone first (it computes and, with the cache on, publishes the shared
blocks); then all N start at once. Reported per mode: TTFT p50 / p99 of the N (p99 is about when the last prompt
was prefilled), the prompt tokens the server computed (queries - hits of lorax_prefix_cache_*, or all of them
with the cache off), and how many of the N answers equal the other mode's (greedy).

    prefix_bench.py --engine build/bin/lorax-engine --model models/demo --system-tokens 256 --requests 16
"""
import argparse
import asyncio
import json
import pathlib
import random
import shutil
import sys
import tempfile
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from serve_bench import WORDS, Server, delta, model_with_tokenizer, percentile, requests_get, run_phase, scrape  # noqa: E402


def post(url, path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def system_prompt(url, tokens, rng):
    """Words whose tokenization is about `tokens` long."""
    words = [rng.choice(WORDS) for _ in range(tokens)]
    n = len(post(url, "/tokenize", {"inputs": " ".join(words)}))
    while n > tokens and words:
        words = words[: max(1, int(len(words) * tokens / n))]
        n = len(post(url, "/tokenize", {"inputs": " ".join(words)}))
    return " ".join(words), n


def run_mode(a, model, mode, log):
    server = Server(a.engine, str(model), ["--prefix-caching", mode, *a.server_args], log)
    try:
        rng = random.Random(a.seed)
        system, system_tokens = system_prompt(server.url, a.system_tokens, rng)
        params = {"max_new_tokens": a.max_new_tokens, "ignore_eos_token": True}
        # Warm-up with another system prompt (CUDA graphs, allocator), then the first request alone.
        other, _ = system_prompt(server.url, a.system_tokens, random.Random(a.seed + 1))
        warm = [{"inputs": other + f" warm {i}", "parameters": params} for i in range(a.requests)]
        asyncio.run(run_phase(server.url, a.requests, warm))
        questions = [" ".join(rng.choice(WORDS) for _ in range(a.question_words)) for _ in range(a.requests)]
        before = scrape(requests_get(server.url + "/metrics"))
        first = asyncio.run(run_phase(server.url, 1, [{"inputs": system + " " + questions[0], "parameters": params}]))
        mid = scrape(requests_get(server.url + "/metrics"))
        bodies = [{"inputs": system + " " + q, "parameters": params} for q in questions]
        stats = asyncio.run(run_phase(server.url, a.requests, bodies))
        after = scrape(requests_get(server.url + "/metrics"))
        texts = [post(server.url, "/generate", {"inputs": b["inputs"], "parameters": {**params, "max_new_tokens": 8}})
                 ["generated_text"] for b in bodies[:8]]
        prompt_tokens = delta(after, mid, "lorax_request_input_length_sum")
        hits = delta(after, mid, "lorax_prefix_cache_hits_total")
        return {"mode": mode, "requests": a.requests, "failures": len(stats["failures"]) + len(first["failures"]),
                "system_prompt_tokens": system_tokens,
                "first_request_ttft_ms": round(first["ttft"][0] * 1e3, 2) if first["ttft"] else None,
                "ttft_ms_p50": round(percentile(stats["ttft"], 50) * 1e3, 2),
                "ttft_ms_p99": round(percentile(stats["ttft"], 99) * 1e3, 2),
                "prompt_tokens": int(prompt_tokens), "prompt_tokens_reused": int(hits),
                "prompt_tokens_computed": int(prompt_tokens - hits),
                "first_request_reused": int(delta(mid, before, "lorax_prefix_cache_hits_total")),
                "seconds": round(stats["seconds"], 3), "texts": texts, "server_args": a.server_args}
    finally:
        rc = server.stop()
        if rc != 0:
            raise SystemExit(f"the {mode} server exited with {rc}; see {log}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", default="build/bin/lorax-engine")
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokenizer", help="folder with tokenizer.json (+ tokenizer_config.json) when the model has none")
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--system-tokens", type=int, default=1024)
    ap.add_argument("--question-words", type=int, default=24)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-dir", default=None, help="where the server logs go (default: a temporary folder)")
    ap.add_argument("--server-args", nargs=argparse.REMAINDER, default=[], help="more `serve` flags (last)")
    a = ap.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="prefix-bench-"))
    try:
        model = model_with_tokenizer(a.model, a.tokenizer, work)
        logs = pathlib.Path(a.log_dir) if a.log_dir else work
        results = {m: run_mode(a, model, m, str(logs / f"prefix-{m}.log")) for m in ("off", "on")}
        same = sum(x == y for x, y in zip(results["off"].pop("texts"), results["on"].pop("texts")))
        for r in results.values():
            r["answers_equal_to_other_mode"] = f"{same}/8"
            print(json.dumps(r), flush=True)
        off, on = results["off"], results["on"]
        print("| prefix caching | TTFT p50 / p99 ms | prompt tokens computed / sent | first request TTFT ms |")
        print("|---|---|---|---|")
        for r in (off, on):
            print(f"| {r['mode']} | {r['ttft_ms_p50']} / {r['ttft_ms_p99']} | {r['prompt_tokens_computed']:,} / "
                  f"{r['prompt_tokens']:,} | {r['first_request_ttft_ms']} |")
        print(f"prefix-bench: {a.requests} requests sharing a {on['system_prompt_tokens']}-token system prompt: "
              f"TTFT p50 {off['ttft_ms_p50'] / on['ttft_ms_p50']:.1f}x lower, p99 {off['ttft_ms_p99'] / on['ttft_ms_p99']:.1f}x "
              f"lower with the cache; greedy answers equal in {same}/8")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
