#!/usr/bin/env python3
"""The Qwen2 embedding fixture served on the GPU against sentence-transformers' references
(tests/fixtures/models/qwen2-embed/reference-embeddings.json): float32 within 1e-3 of the float64 embeddings, with
and without the LoRA adapter; bfloat16 no further from them than 1.5x sentence-transformers' own bf16 drift (max
abs error, and 1 - cosine), the margin gpu-check uses for transformers' bf16 yardsticks.
Usage: embedding_parity.py ENGINE_BINARY
"""
import json
import math
import pathlib
import re
import subprocess
import sys
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[2]
MODEL = REPO / "tests" / "fixtures" / "models" / "qwen2-embed"
ADAPTER = REPO / "tests" / "fixtures" / "adapters" / "qwen2-embed" / "attn-r4"


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def serve(engine, dtype):
    p = subprocess.Popen([engine, "serve", "--model", str(MODEL), "--device", "cuda", "--dtype", dtype, "--port", "0",
                          "--host", "127.0.0.1", "--adapter-root", str(ADAPTER.parent)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        m = re.search(r"listening on [\d.]+:(\d+)", p.stdout.readline())
        if m:
            return p, f"http://127.0.0.1:{m.group(1)}"
    p.kill()
    raise SystemExit(f"server did not start: {p.stderr.read()[-800:]}")


def distance(got, want):
    err = max(max(abs(a - b) for a, b in zip(g, w)) for g, w in zip(got, want))
    cos = min(sum(a * b for a, b in zip(g, w)) / math.sqrt(sum(a * a for a in g) * sum(b * b for b in w))
              for g, w in zip(got, want))
    return err, cos


def main():
    engine = sys.argv[1]
    ref = json.loads((MODEL / "reference-embeddings.json").read_text())
    drift = ref["bf16_drift"]
    failures = 0
    for dtype in ("float32", "bfloat16"):
        p, url = serve(engine, dtype)
        try:
            got = [d["embedding"] for d in post(url + "/v1/embeddings", {"input": ref["texts"]})["data"]]
            tuned = [post(url + "/embed", {"inputs": t, "parameters": {"adapter_id": str(ADAPTER),
                                                                       "adapter_source": "local"}})["embeddings"]
                     for t in ref["texts"]]
        finally:
            p.terminate()
            p.wait(30)
        for label, vectors, want in (("base", got, ref["float64"]["normalized"]),
                                     ("adapter", tuned, ref["adapter"]["normalized"])):
            err, cos = distance(vectors, want)
            if dtype == "float32":
                ok, limit = err < 1e-3, "max abs < 1.0e-03"
            else:
                max_err, max_gap = 1.5 * drift["max_abs"], 1.5 * (1 - drift["min_cosine"])
                ok, limit = err <= max_err and 1 - cos <= max_gap, f"max abs <= {max_err:.1e}, 1-cos <= {max_gap:.1e}"
            failures += not ok
            print(f"EMBED {'PASS' if ok else 'FAIL'} {dtype:9s} {label:8s} max|d| {err:.2e}  min cosine {cos:.8f}  "
                  f"({limit}; sentence-transformers bf16: {drift['max_abs']:.2e}, {drift['min_cosine']:.8f})")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
