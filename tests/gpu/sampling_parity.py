#!/usr/bin/env python3
"""Seeded sampling through the whole engine on the GPU against the CPU backend.

The draw's random number comes from the request's RNG on the host, and the CUDA
backend applies penalties, temperature, top-k and top-p itself, so `generate`
with --device cuda --dtype float32 must pick the same tokens as --device cpu
(logits agree to ~1e-5; a draw could only flip within that of a boundary), with
log-probs within 1e-3. bfloat16 runs must be reproducible for a seed.
Usage: sampling_parity.py ENGINE_BINARY MODEL_DIR
"""
import json
import subprocess
import sys

SETTINGS = [
    ["--temperature", "0.8", "--top-p", "0.9", "--top-k", "40", "--repetition-penalty", "1.2"],
    ["--do-sample", "--frequency-penalty", "0.5", "--presence-penalty", "0.3"],
    ["--temperature", "1.3", "--top-k", "5"],
    ["--top-p", "0.6"],
    ["--repetition-penalty", "1.5"],  # greedy after a penalty
    ["--typical-p", "0.7"],  # typical-p mass filter on the device
]


def run(engine, model, device, dtype, extra, seed):
    cmd = [engine, "generate", "--model", model, "--prompt", "This License", "--max-new-tokens", "40",
           "--seed", str(seed), "--details", "--decoder-input-details", "--json", "--device", device] + extra
    if dtype:
        cmd += ["--dtype", dtype]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {out.stderr.strip()[-500:]}")
    d = json.loads(out.stdout)["details"]
    return [t["id"] for t in d["tokens"]], [t["logprob"] for t in d["tokens"]], [p["logprob"] for p in d["prefill"]]


def main():
    engine, model = sys.argv[1], sys.argv[2]
    failures = 0
    for i, extra in enumerate(SETTINGS):
        for seed in (1, 7):
            cpu = run(engine, model, "cpu", None, extra, seed)
            gpu = run(engine, model, "cuda", "float32", extra, seed)
            same = cpu[0] == gpu[0]
            worst = max([abs(a - b) for a, b in zip(cpu[1], gpu[1])] +
                        [abs(a - b) for a, b in zip(cpu[2], gpu[2]) if a is not None], default=0.0)
            bf = [run(engine, model, "cuda", "bfloat16", extra, seed)[0] for _ in range(2)]
            ok = same and worst < 1e-3 and bf[0] == bf[1]
            failures += not ok
            print(f"SAMPLING {'PASS' if ok else 'FAIL'} {' '.join(extra):<72} seed {seed:>2}: "
                  f"tokens {'identical' if same else 'DIFFER'} to cpu, max |dlogprob| {worst:.1e}, "
                  f"bf16 reproducible {bf[0] == bf[1]}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
