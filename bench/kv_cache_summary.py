#!/usr/bin/env python3
"""Summary of gpu-check's KV-cache dtype runs (`lorax-engine bench` JSON lines): decode tok/s per context length
and prefill tok/s, each against the bf16 (auto) KV run of the same gpu-check."""
import json
import sys

lines = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
rows = [r for r in lines if r["bench"] == "decode"]
base = {(r["batch"], r["prompt_len"]): r["tokens_per_s"] for r in rows if r["kv_cache_dtype"] != "float8_e4m3"}
for r in rows:
    ref = base.get((r["batch"], r["prompt_len"]))
    ratio = f"{r['tokens_per_s'] / ref:.2f}x bf16 KV" if ref else "-"
    print(f"kv-cache {r['kv_cache_dtype']:12s} batch {r['batch']} context {r['prompt_len']:5d}: "
          f"{r['tokens_per_s']:9.1f} tok/s, step {r['step_ms']:.2f} ms, {ratio}")
prefill = {r["kv_cache_dtype"]: r["tokens_per_s"] for r in lines if r["bench"] == "prefill"}
for dtype, tps in prefill.items():
    ref = next((v for k, v in prefill.items() if k != "float8_e4m3"), None)
    print(f"kv-cache {dtype:12s} prefill 2048 tokens: {tps:9.1f} tok/s" + (f", {tps / ref:.2f}x bf16 KV" if ref else ""))
