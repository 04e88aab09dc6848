#!/usr/bin/env python3
"""Encode throughput of the C++ tokenizer vs the Python `tokenizers` library, one thread each.

Text: ~1 MB of mixed documents (Python standard-library source = code + English comments, and the
seeded multilingual corpus of tests/tokenizer), the same documents for both sides, each encoded
without special tokens. Prints one line per tokenizer and, with --markdown, a table for RESULTS.md.
    .venv/bin/python bench/tokenizer/bench_encode.py [--build build] [--tokenizers llama3,gemma3]
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import sysconfig
import tempfile
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "tokenizer"))
from tok_corpus import corpus  # noqa: E402

import tokenizers  # noqa: E402


def documents(target_bytes=1_000_000):
    docs = []
    stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
    code_budget = target_bytes * 3 // 4
    size = 0
    for path in sorted(stdlib.glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        for i in range(0, len(text), 4000):
            chunk = text[i:i + 4000]
            docs.append(chunk)
            size += len(chunk.encode())
            if size >= code_budget:
                break
        if size >= code_budget:
            break
    texts = corpus(size=4000)
    doc = []
    for t in texts:
        doc.append(t)
        if sum(len(x.encode()) for x in doc) > 2000:
            docs.append(" ".join(doc))
            size += len(docs[-1].encode())
            doc = []
        if size >= target_bytes:
            break
    return [d.replace("\0", "") for d in docs]


def bench_python(tok, docs, repeat):
    best, tokens = 1e30, 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        tokens = sum(len(tok.encode(d, add_special_tokens=False).ids) for d in docs)
        best = min(best, time.perf_counter() - t0)
    return best, tokens


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("LORAX_BUILD_DIR", str(REPO / "build")))
    ap.add_argument("--shared", default=os.environ.get("LORAX_SHARED_DIR", str(REPO.parent / "shared")))
    ap.add_argument("--tokenizers", default="llama3,gemma3,gpt2,llama2,qwen3")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()

    docs = documents()
    data = "\0".join(docs).encode("utf-8")
    mb = len(data) / 1e6
    engine = pathlib.Path(args.build) / "bin" / "lorax-engine"
    rows = []
    with tempfile.NamedTemporaryFile(suffix=".txt") as f:
        f.write(data)
        f.flush()
        for name in args.tokenizers.split(","):
            path = pathlib.Path(args.shared) / "tokenizers" / name
            tok = tokenizers.Tokenizer.from_file(str(path / "tokenizer.json"))
            py_s, py_tokens = bench_python(tok, docs, args.repeat)
            out = subprocess.run([str(engine), "tokenize", "--tokenizer", str(path), "--bench-file", f.name,
                                  "--repeat", str(args.repeat)], check=True, capture_output=True, text=True)
            cpp = json.loads(out.stdout)
            if cpp["tokens"] != py_tokens:
                print(f"WARNING {name}: token counts differ: c++ {cpp['tokens']} python {py_tokens}")
            rows.append((name, mb, cpp["tokens"], mb / cpp["seconds"], mb / py_s, py_s / cpp["seconds"]))
            print(f"{name}: {mb:.2f} MB, {cpp['tokens']} tokens, C++ {mb / cpp['seconds']:.2f} MB/s, "
                  f"Python {mb / py_s:.2f} MB/s, ratio C++/Python {py_s / cpp['seconds']:.2f}", flush=True)
    if args.markdown:
        print("\n| tokenizer | MB | tokens | C++ MB/s | Python MB/s | C++/Python |\n|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r[0]} | {r[1]:.2f} | {r[2]} | {r[3]:.2f} | {r[4]:.2f} | {r[5]:.2f} |")


if __name__ == "__main__":
    main()
