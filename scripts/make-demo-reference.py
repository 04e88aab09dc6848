#!/usr/bin/env python3
"""Float64 transformers reference for the trained demo model (models/demo): prefill
log-probs and 24-token greedy continuations of license-style prompts, written to
tests/fixtures/demo/reference.json in the fixtures' format.

The fixture models are random and deliberately sensitive, so in bfloat16 even
transformers drifts far from their float64 references; this trained model is the
check that the engine's bf16 path meets the plain criterion (log-probs within
0.05, >= 95% of greedy positions) where real weights make that meaningful.
Run on the GPU machine (torch, transformers): python3 scripts/make-demo-reference.py"""
import json
import pathlib
import sys

from tokenizers import Tokenizer

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from fixtures_lib import models as models_lib  # noqa: E402
from fixtures_lib import reference as ref  # noqa: E402

NEW_TOKENS = 24
PROMPTS = [
    "This License",
    "Permission is hereby granted, free of charge, to any person obtaining a copy",
    "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND",
    "This program is free software; you can redistribute it and/or modify it under the terms of",
    "Redistribution and use in source and binary forms, with or without modification, are permitted",
    "On Debian systems, the complete text of the GNU General Public License",
    "Copyright:",
    "You should have received a copy of the GNU Lesser General Public License along with this library;",
]


def main():
    demo = ROOT / "models" / "demo"
    tok = Tokenizer.from_file(str(demo / "tokenizer.json"))
    model = models_lib.load(str(demo))
    cases = [ref.case(model, p, tok.encode(p, add_special_tokens=True).ids, n_new=NEW_TOKENS) for p in PROMPTS]
    out = ref.reference_json("demo", "llama", "bfloat16", "5.x", False, cases)
    out["max_new_tokens"] = NEW_TOKENS
    path = ROOT / "tests" / "fixtures" / "demo" / "reference.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    for c in cases:
        print(f"{len(c['input_ids']):3d} prompt tokens, min greedy margin {c['greedy_min_margin']:.3f}: {c['prompt'][:50]}")
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
