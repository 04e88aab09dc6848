#!/usr/bin/env python3
"""Load test for `lorax-engine serve`: many concurrent streaming clients on loopback for a bounded time.

Each client loops: POST /generate_stream with a prompt from a fixed list, reads the SSE events, records the time
to the first token (TTFT) and the gaps between tokens (inter-token latency, ITL), and starts the next request,
until --duration has passed. Requests still running then are awaited (each is bounded by --max-new-tokens).
Reports requests/s, generated tokens/s and TTFT/ITL percentiles.

  load_test.py --url http://127.0.0.1:8080 --clients 32 --duration 30
  load_test.py --engine build/bin/lorax-engine --model tests/fixtures/models/llama --clients 32 --duration 30
(with --engine it starts the server itself on a free loopback port and stops it afterwards).
"""
import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time

import aiohttp

PROMPTS = [
    "The cat", "Once upon a time there was", "Paged attention keeps the key and value cache",
    "Continuous batching mixes prefills and decodes in one forward pass, so", "Hello world! How are",
    "Low-rank adapters add a small update to the weights of a large model", "Numbers: 1 2 3",
    "A long time ago in a galaxy far, far away, a small robot", "Grüße aus", "The quick brown fox jumps",
]


def histogram_quantile(metrics_text, name, q):
    """Prometheus-style quantile estimate (linear within a bucket) from a histogram in /metrics text."""
    buckets = []
    for m in re.finditer(rf'^{name}_bucket{{le="([^"]+)"}} (\S+)$', metrics_text, re.M):
        buckets.append((float(m.group(1)), float(m.group(2))))
    if not buckets or buckets[-1][1] == 0:
        return float("nan")
    rank = q * buckets[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_count) / max(count - prev_count, 1e-12)
        prev_le, prev_count = le, count
    return prev_le


def percentile(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


async def one_request(session, url, prompt, max_new_tokens, stats):
    body = {"inputs": prompt, "parameters": {"max_new_tokens": max_new_tokens, "ignore_eos_token": True}}
    start = time.perf_counter()
    last, tokens = None, 0
    async with session.post(url + "/generate_stream", json=body) as resp:
        if resp.status != 200:
            stats["errors"][str(resp.status)] = stats["errors"].get(str(resp.status), 0) + 1
            await resp.read()
            return
        async for raw in resp.content:
            line = raw.decode("utf-8").strip()
            if not line.startswith("data:"):
                continue
            now = time.perf_counter()
            event = json.loads(line[5:])
            if "error" in event:
                stats["errors"]["sse"] = stats["errors"].get("sse", 0) + 1
                return
            if last is None:
                stats["ttft"].append(now - start)
            else:
                stats["itl"].append(now - last)
            last = now
            tokens += 1
    stats["latency"].append(time.perf_counter() - start)
    stats["tokens"] += tokens
    stats["done"] += 1


async def client(i, session, args, deadline, stats):
    n = i
    while time.perf_counter() < deadline:
        await one_request(session, args.url, PROMPTS[n % len(PROMPTS)], args.max_new_tokens, stats)
        n += args.clients


async def run(args):
    stats = {"ttft": [], "itl": [], "latency": [], "tokens": 0, "done": 0, "errors": {}}
    timeout = aiohttp.ClientTimeout(total=args.duration + 600)
    connector = aiohttp.TCPConnector(limit=args.clients)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        start = time.perf_counter()
        deadline = start + args.duration
        await asyncio.gather(*(client(i, session, args, deadline, stats) for i in range(args.clients)))
        elapsed = time.perf_counter() - start
    return stats, elapsed


def start_server(args):
    cmd = [args.engine, "serve", "--model", args.model, "--host", "127.0.0.1", "--port", "0",
           "--max-waiting-requests", str(max(128, 2 * args.clients)), *args.server_args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.search(r"listening on [\d.]+:(\d+)", line)
    if not m:
        proc.kill()
        sys.exit(f"server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{m.group(1)}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running server")
    ap.add_argument("--engine", help="lorax-engine binary: start a server on --model")
    ap.add_argument("--model")
    ap.add_argument("--server-args", nargs=argparse.REMAINDER, default=[], help="more `serve` flags (last)")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--duration", type=float, default=30.0, help="seconds during which new requests start")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args()
    if not args.url and not (args.engine and args.model):
        ap.error("give --url, or --engine and --model")
    if args.clients <= 0 or args.duration <= 0 or args.duration > 3600:
        ap.error("--clients must be positive and --duration in (0, 3600]")
    proc = None
    if args.engine:
        proc, args.url = start_server(args)
    try:
        stats, elapsed = asyncio.run(run(args))
        metrics = None
        try:
            import urllib.request
            metrics = urllib.request.urlopen(args.url + "/metrics", timeout=10).read().decode()
        except OSError:
            pass
    finally:
        if proc:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    ms = lambda v: round(v * 1000, 2)  # noqa: E731
    summary = {
        "clients": args.clients, "duration_s": round(elapsed, 2), "max_new_tokens": args.max_new_tokens,
        "requests": stats["done"], "errors": stats["errors"],
        "requests_per_s": round(stats["done"] / elapsed, 2), "tokens_per_s": round(stats["tokens"] / elapsed, 1),
        "ttft_ms": {p: ms(percentile(stats["ttft"], p)) for p in (50, 90, 99)},
        "itl_ms": {p: ms(percentile(stats["itl"], p)) for p in (50, 90, 99)},
        "latency_ms": {p: ms(percentile(stats["latency"], p)) for p in (50, 90, 99)},
    }
    if metrics:
        m = re.search(r"^lorax_preemptions_total (\S+)$", metrics, re.M)
        summary["server_preemptions"] = float(m.group(1)) if m else None
        # The server's own view (its histograms), free of the Python client's read batching.
        for key, name in (("server_ttft_ms", "lorax_request_time_to_first_token_duration"),
                          ("server_itl_ms", "lorax_request_inter_token_latency_duration")):
            summary[key] = {p: ms(histogram_quantile(metrics, name, p / 100)) for p in (50, 90, 99)}
    if args.json:
        print(json.dumps(summary))
    else:
        for k, v in summary.items():
            print(f"{k:>16}: {v}")
    return 1 if stats["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
