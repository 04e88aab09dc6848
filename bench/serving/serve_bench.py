#!/usr/bin/env python3
"""Serving benchmark for `lorax-engine serve`, in the spirit of vLLM's benchmark_serving: it starts the server,
then drives N concurrent streaming clients (POST /generate_stream) through a fixed number of requests per phase
and reports output tokens/s, TTFT and inter-token latency percentiles, failures, and what the adapter store did
(loads per tier with their mean seconds, evictions) from /metrics.

Adapters are generated for the model's shape: random rank-R PEFT LoRA on q, k, v, o, gate, up and down of every
layer (Llama-style models), in bf16 when torch is there (the GPU machine), else float32. `--adapters N` distinct
ids are served from `--adapter-files K` distinct weight files (ids beyond K get their own folder holding links to
one of the K files: the engine treats every id as its own adapter, while the disk holds K of them). Each request
picks its adapter uniformly or by a power law (`--popularity zipf:ALPHA`, probability of the i-th adapter
proportional to 1/(i+1)^ALPHA, as in S-LoRA's workloads).

    serve_bench.py --engine build/bin/lorax-engine --model models/demo --clients 8 --requests 64 \
        --phases base,adapters --adapters 16 --popularity zipf:1.0 --server-args --max-loaded-adapters 4

Prints one JSON object per phase (and a table with --table). Phases share the one server, so the base phase is
the reference for the adapter phases of the same run.
"""
import argparse
import asyncio
import json
import math
import os
import pathlib
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import aiohttp
import numpy as np

WORDS = ("the of and to in is was for on that with as by at from his her an which or were are be this had not "
         "but first one their also after new other two they its time has who more can been most into only over "
         "city year many during when some these world may would would about three university known such well "
         "school later used made national while under government war between both state part then being").split()


# ---------------------------------------------------------------------------------------------------------------
# Adapters


def lora_shapes(cfg):
    """(module path, in_features, out_features) of every LoRA target of a Llama-style config."""
    h = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads", heads)
    d = cfg.get("head_dim") or h // heads
    inter = cfg["intermediate_size"]
    per_layer = [("self_attn.q_proj", h, heads * d), ("self_attn.k_proj", h, kv * d), ("self_attn.v_proj", h, kv * d),
                 ("self_attn.o_proj", heads * d, h), ("mlp.gate_proj", h, inter), ("mlp.up_proj", h, inter),
                 ("mlp.down_proj", inter, h)]
    return [(f"model.layers.{i}.{m}", fi, fo) for i in range(cfg["num_hidden_layers"]) for m, fi, fo in per_layer]


def write_adapter(folder, cfg, rank, seed):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tensors = {}
    for module, fi, fo in lora_shapes(cfg):
        tensors[f"base_model.model.{module}.lora_A.weight"] = (rng.standard_normal((rank, fi)) * 0.01).astype(np.float32)
        tensors[f"base_model.model.{module}.lora_B.weight"] = (rng.standard_normal((fo, rank)) * 0.01).astype(np.float32)
    try:  # bf16, as adapters for a bf16 model ship, when torch can write it
        import torch
        from safetensors.torch import save_file
        save_file({k: torch.from_numpy(v).to(torch.bfloat16) for k, v in tensors.items()},
                  str(folder / "adapter_model.safetensors"))
    except ImportError:
        from safetensors.numpy import save_file
        save_file(tensors, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": rank, "lora_alpha": 2 * rank, "bias": "none",
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}))


def make_adapters(root, cfg, count, files, rank):
    """`count` adapter folders a0000.. under root, backed by `files` distinct weight files."""
    files = max(1, min(files, count))
    for i in range(files):
        if not (root / f"a{i:04d}" / "adapter_model.safetensors").exists():  # made by an earlier run
            write_adapter(root / f"a{i:04d}", cfg, rank, seed=1000 + i)
    for i in range(files, count):
        folder = root / f"a{i:04d}"
        if (folder / "adapter_model.safetensors").exists():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        src = root / f"a{i % files:04d}"
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            os.symlink(src / name, folder / name)
    return [f"a{i:04d}" for i in range(count)]


def popularity_weights(spec, n):
    if spec == "uniform":
        return [1.0] * n
    m = re.fullmatch(r"zipf:([0-9.]+)", spec)
    if not m:
        raise SystemExit(f"--popularity must be uniform or zipf:ALPHA, not {spec!r}")
    alpha = float(m.group(1))
    return [1.0 / (i + 1) ** alpha for i in range(n)]


# ---------------------------------------------------------------------------------------------------------------
# Server and metrics


def model_with_tokenizer(model, tokenizer, work):
    """`model`, or with `tokenizer` given a folder under `work` holding the model's files and that tokenizer."""
    model = pathlib.Path(model)
    if not tokenizer:
        return model
    merged = work / "model"
    merged.mkdir()
    for f in model.iterdir():
        (merged / f.name).symlink_to(f.resolve())
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if (pathlib.Path(tokenizer) / name).exists():
            shutil.copy(pathlib.Path(tokenizer) / name, merged / name)
    return merged



class Server:
    def __init__(self, engine, model, args, log_path):
        self.log = open(log_path, "w")
        cmd = [engine, "serve", "--model", model, "--host", "127.0.0.1", "--port", "0", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self._first_line(timeout=600)
        m = re.search(r"listening on [\d.]+:(\d+)", line or "")
        if not m:
            self.stop()
            raise SystemExit(f"the server did not start ({line!r}); see {log_path}")
        self.url = f"http://127.0.0.1:{m.group(1)}"

    def _first_line(self, timeout):
        out = []
        t = threading.Thread(target=lambda: out.append(self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(timeout)
        return out[0] if out else None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def scrape(text):
    """{(name, labels): value} of every sample in Prometheus text."""
    out = {}
    for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$", text, re.M):
        out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def delta(after, before, name, labels=""):
    return after.get((name, labels), 0.0) - before.get((name, labels), 0.0)


# ---------------------------------------------------------------------------------------------------------------
# Clients


def percentile(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


async def one_request(session, url, body, stats):
    t0 = time.perf_counter()
    first = last = None
    tokens = 0
    try:
        async with session.post(url + "/generate_stream", json=body) as resp:
            if resp.status != 200:
                stats["failures"].append(f"HTTP {resp.status}: {(await resp.text())[:200]}")
                return
            buf = b""
            async for chunk in resp.content.iter_any():
                buf += chunk
                while b"\n\n" in buf:
                    event, buf = buf.split(b"\n\n", 1)
                    if not event.startswith(b"data:"):
                        continue
                    data = json.loads(event[5:])
                    if "error" in data:
                        stats["failures"].append(data["error"][:200])
                        return
                    now = time.perf_counter()
                    if first is None:
                        first = now
                    else:
                        stats["itl"].append(now - last)
                    last = now
                    tokens += 1
    except (aiohttp.ClientError, asyncio.TimeoutError) as e:
        stats["failures"].append(repr(e)[:200])
        return
    if first is not None:
        stats["ttft"].append(first - t0)
        stats["tokens"] += tokens
        stats["ok"] += 1


async def run_phase(url, clients, bodies):
    stats = {"ttft": [], "itl": [], "tokens": 0, "ok": 0, "failures": []}
    queue = list(reversed(bodies))
    timeout = aiohttp.ClientTimeout(total=3600)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=clients)) as session:
        async def client():
            while queue:
                await one_request(session, url, queue.pop(), stats)
        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        stats["seconds"] = time.perf_counter() - t0
    return stats


def make_bodies(n, prompt_words, max_new, adapters, weights, rng):
    bodies = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(prompt_words)]
        params = {"max_new_tokens": max_new, "ignore_eos_token": True}
        if adapters:
            params["adapter_id"] = rng.choices(adapters, weights=weights)[0]
        bodies.append({"inputs": " ".join(words), "parameters": params})
    return bodies


def summarize(phase, stats, before, after, bodies):
    ms = lambda v: round(v * 1e3, 2)
    loads = {t: delta(after, before, "lorax_adapter_load_duration_count", f'{{tier="{t}"}}') for t in ("host", "device")}
    secs = {t: delta(after, before, "lorax_adapter_load_duration_sum", f'{{tier="{t}"}}') for t in ("host", "device")}
    distinct = len({b["parameters"].get("adapter_id") for b in bodies} - {None})
    return {
        "phase": phase, "requests": len(bodies), "ok": stats["ok"], "failures": len(stats["failures"]),
        "failure_examples": stats["failures"][:3], "distinct_adapters": distinct,
        "seconds": round(stats["seconds"], 3),
        "output_tokens_per_s": round(stats["tokens"] / stats["seconds"], 1),
        "requests_per_s": round(stats["ok"] / stats["seconds"], 2),
        "ttft_ms_p50": ms(percentile(stats["ttft"], 50)), "ttft_ms_p99": ms(percentile(stats["ttft"], 99)),
        "itl_ms_p50": ms(percentile(stats["itl"], 50)), "itl_ms_p99": ms(percentile(stats["itl"], 99)),
        "loads_to_host": int(loads["host"]), "loads_to_device": int(loads["device"]),
        "mean_load_ms_host": ms(secs["host"] / loads["host"]) if loads["host"] else None,
        "mean_load_ms_device": ms(secs["device"] / loads["device"]) if loads["device"] else None,
        "evictions_device": int(delta(after, before, "lorax_adapter_evictions_total", '{tier="device"}')),
        "evictions_host": int(delta(after, before, "lorax_adapter_evictions_total", '{tier="host"}')),
        "load_failures": int(delta(after, before, "lorax_adapter_load_failures_total")),
        "max_adapters_in_batch": int(after.get(("lorax_batch_max_adapters", ""), 0)),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", default="build/bin/lorax-engine")
    ap.add_argument("--model", required=True, help="model folder (config.json; weights unless --load-format dummy)")
    ap.add_argument("--tokenizer", help="folder with tokenizer.json (+ tokenizer_config.json) when the model has none")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--requests", type=int, default=256, help="requests per phase")
    ap.add_argument("--warmup", type=int, default=None, help="requests before the first phase (default: clients)")
    ap.add_argument("--prompt-words", type=int, default=100)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--phases", default="base,adapters", help="comma list of base, adapters (same server, in order)")
    ap.add_argument("--adapters", type=int, default=100, help="distinct adapter ids")
    ap.add_argument("--adapter-files", type=int, default=32, help="distinct weight files behind them")
    ap.add_argument("--adapter-rank", type=int, default=16)
    ap.add_argument("--popularity", default="uniform", help="uniform or zipf:ALPHA")
    ap.add_argument("--adapter-root", help="where the adapters are made (default: a temporary folder)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log", default=None, help="server log file (default: in the temporary folder)")
    ap.add_argument("--table", action="store_true", help="also print a Markdown table")
    ap.add_argument("--load-probe", type=int, default=0,
                    help="after the phases, load N adapters no phase used (source: warm page cache) and promote N "
                         "from the host tier, one at a time through POST /adapters, and report their seconds")
    ap.add_argument("--server-args", nargs=argparse.REMAINDER, default=[], help="more `serve` flags (last)")
    a = ap.parse_args()

    work = pathlib.Path(tempfile.mkdtemp(prefix="serve-bench-"))
    try:
        cfg = json.loads((pathlib.Path(a.model) / "config.json").read_text())
        model = model_with_tokenizer(a.model, a.tokenizer, work)
        phases = a.phases.split(",")
        adapters = []
        root = pathlib.Path(a.adapter_root) if a.adapter_root else work / "adapters"
        if "adapters" in phases:
            t0 = time.perf_counter()
            adapters = make_adapters(root, cfg, a.adapters, a.adapter_files, a.adapter_rank)
            print(f"# {len(adapters)} adapters ({min(a.adapter_files, a.adapters)} weight files, rank "
                  f"{a.adapter_rank}) made in {time.perf_counter() - t0:.1f} s under {root}", file=sys.stderr)
        server_args = list(a.server_args)
        if adapters:
            server_args += ["--adapter-dir", str(root)]
        server = Server(a.engine, str(model), server_args, a.log or str(work / "server.log"))
        rng = random.Random(a.seed)
        try:
            warmup = make_bodies(a.clients if a.warmup is None else a.warmup, a.prompt_words, a.max_new_tokens, [],
                                 None, rng)
            asyncio.run(run_phase(server.url, a.clients, warmup))
            results = []
            weights = popularity_weights(a.popularity, len(adapters)) if adapters else None
            for phase in phases:
                if phase not in ("base", "adapters"):
                    raise SystemExit(f"unknown phase {phase!r}")
                bodies = make_bodies(a.requests, a.prompt_words, a.max_new_tokens,
                                     adapters if phase == "adapters" else [], weights, rng)
                before = scrape(requests_get(server.url + "/metrics"))
                stats = asyncio.run(run_phase(server.url, a.clients, bodies))
                after = scrape(requests_get(server.url + "/metrics"))
                r = summarize(phase, stats, before, after, bodies)
                r.update({"clients": a.clients, "max_new_tokens": a.max_new_tokens, "prompt_words": a.prompt_words,
                          "adapters": len(adapters) if phase == "adapters" else 0, "popularity": a.popularity,
                          "server_args": a.server_args})
                results.append(r)
                print(json.dumps(r), flush=True)
            if a.load_probe and adapters:
                used = {b["parameters"].get("adapter_id") for b in bodies}
                r = load_probe(server.url, [i for i in reversed(adapters) if i not in used], a.load_probe)
                print(json.dumps(r), flush=True)
                results.append(r)
        finally:
            rc = server.stop()
        if rc != 0:
            raise SystemExit(f"the server exited with {rc}")
        if a.table:
            base = next((r for r in results if r["phase"] == "base"), None)
            print("| phase | requests | failures | output tok/s | vs base | TTFT p50 / p99 ms | ITL p50 / p99 ms |"
                  " loads host / device | mean load ms host / device | evictions device / host |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            for r in results:
                if r["phase"] == "load-probe":
                    continue
                ratio = f"{r['output_tokens_per_s'] / base['output_tokens_per_s']:.2f}x" if base else "-"
                print(f"| {r['phase']} ({r['adapters']} adapters, {r['popularity']}) | {r['requests']} | {r['failures']} |"
                      f" {r['output_tokens_per_s']:,} | {ratio} | {r['ttft_ms_p50']} / {r['ttft_ms_p99']} |"
                      f" {r['itl_ms_p50']} / {r['itl_ms_p99']} | {r['loads_to_host']} / {r['loads_to_device']} |"
                      f" {r['mean_load_ms_host']} / {r['mean_load_ms_device']} |"
                      f" {r['evictions_device']} / {r['evictions_host']} |")
            for r in results:
                for e in r.get("failure_examples", []):
                    print(f"| failure in {r['phase']}: {e} |")
    finally:
        if not a.adapter_root:
            shutil.rmtree(work, ignore_errors=True)


def load_probe(url, cold_ids, n):
    """Seconds of single, quiet loads: from the source (a folder in the page cache) into the host tier and on to
    the device, then host-tier adapters promoted again."""
    import urllib.request

    def post(adapter_id):
        req = urllib.request.Request(url + "/adapters", data=json.dumps({"adapter_id": adapter_id}).encode(),
                                     headers={"Content-Type": "application/json"})
        t0 = time.perf_counter()
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.loads(r.read()), time.perf_counter() - t0

    cold = [post(i) for i in cold_ids[:n]]
    listed = json.loads(requests_get(url + "/adapters"))["adapters"]
    host = [post(a["adapter_id"]) for a in listed if a["tier"] == "host"][:n]
    med = lambda v: round(sorted(v)[len(v) // 2] * 1e3, 2) if v else None
    return {"phase": "load-probe", "cold_loads": len(cold),
            "cold_ms_source_to_host_p50": med([b["load_seconds"] for b, _ in cold]),
            "cold_ms_host_to_device_p50": med([b["promote_seconds"] for b, _ in cold]),
            "cold_ms_request_p50": med([w for _, w in cold]),
            "host_tier_promotions": len(host),
            "host_ms_host_to_device_p50": med([b["promote_seconds"] for b, _ in host if b["tier"] == "device"]),
            "host_ms_request_p50": med([w for _, w in host]),
            "tiers_after": sorted({b["tier"] for b, _ in cold + host})}


def requests_get(url):
    import urllib.request
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read().decode()


if __name__ == "__main__":
    main()
