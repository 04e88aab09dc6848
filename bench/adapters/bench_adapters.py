#!/usr/bin/env python3
"""CPU decode throughput of a 32-request batch with 0, 1, 8 and 32 distinct adapters (random rank-16 LoRA on
qkv, o, gate/up and down of every layer, made in memory by `lorax-engine bench`), as ratios to the base model.
Runs the bench `--repeats` times and keeps each configuration's best run (the machine is shared and noisy).

    bench/adapters/bench_adapters.py [--engine build/bin/lorax-engine] [--model models/demo] [--threads 2]
"""
import argparse
import json
import os
import pathlib
import subprocess

REPO = pathlib.Path(__file__).resolve().parents[2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", default=str(REPO / "build" / "bin" / "lorax-engine"))
    ap.add_argument("--model", default=str(REPO / "models" / "demo"))
    ap.add_argument("--adapters", default="0,1,8,32")
    ap.add_argument("--batch", default="32")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--decode-steps", default="32")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--openblas-threads", default=None, help="OPENBLAS_NUM_THREADS for the run (default: inherited)")
    a = ap.parse_args()
    best = {}
    env = dict(os.environ)
    if a.openblas_threads:
        env["OPENBLAS_NUM_THREADS"] = a.openblas_threads
    for _ in range(a.repeats):
        out = subprocess.run([a.engine, "bench", "--model", a.model, "--batch-sizes", a.batch, "--adapters", a.adapters,
                              "--threads", a.threads, "--decode-steps", a.decode_steps, "--prefill-len", "0"],
                             capture_output=True, text=True, check=True, env=env).stdout
        for line in out.splitlines():
            if line.startswith("{"):
                j = json.loads(line)
                if j["bench"] == "decode":
                    key = j["adapters"]
                    best[key] = max(best.get(key, 0.0), j["tokens_per_s"])
    base = best[0]
    print(f"threads {a.threads}, OPENBLAS_NUM_THREADS {env.get('OPENBLAS_NUM_THREADS', 'unset')}")
    print(f"| distinct adapters in the batch of {a.batch} | decode tokens/s (best of {a.repeats}) | ratio to base |")
    print("|---|---|---|")
    for n in sorted(best):
        print(f"| {n} | {best[n]:.0f} | {best[n] / base:.2f} |")


if __name__ == "__main__":
    main()
