#!/usr/bin/env python3
"""transformers' reference outputs for an FP8 (e4m3) KV cache: every fixture model of tests/fixtures/models, in
float64 with eager attention, with each layer's keys and values (after RoPE, before attention reads them)
rounded through float8_e4m3fn as an FP8 cache stores them: q = e4m3(float32(x) / scale), read back as q * scale,
values beyond +-448 saturating (vLLM's convention). Written beside each reference.json as reference-fp8-kv.json
(scale 1.0, what a checkpoint without k_scale/v_scale gets) and, for llama, reference-fp8-kv-scaled.json with
the per-layer scales it records (the test writes them into a copy of the checkpoint as k_scale / v_scale).

    python scripts/make-fp8-kv-references.py [--fixtures tests/fixtures]

Same prompts as reference.json, same format; needs torch and transformers 5.x (the GPU machine has them).
"""
import argparse
import importlib
import json
import os
import pathlib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from fixtures_lib import models as models_lib  # noqa: E402
from fixtures_lib import reference as ref  # noqa: E402

ARCH_MODULES = ["llama", "gpt2", "gpt_neox", "gemma2", "qwen2"]
SCALED = {"llama": {"k": [0.05, 0.11], "v": [0.03, 0.07]}}  # per layer; llama's fixture has 2 layers

SCALES = {"k": None, "v": None}  # per layer while a model runs; None: 1.0
CALLS = {"n": 0}


def fp8_round(x, scale):
    q = (x.to(torch.float32) / scale).clamp(-448.0, 448.0).to(torch.float8_e4m3fn)
    return (q.to(torch.float32) * scale).to(x.dtype)


def patch_attention():
    """Every architecture's eager attention gets its key/value states rounded first."""
    for name in ARCH_MODULES:
        mod = importlib.import_module(f"transformers.models.{name}.modeling_{name}")
        original = mod.eager_attention_forward

        def rounded(module, query, key, value, *args, _original=original, **kwargs):
            layer = module.layer_idx
            ks = SCALES["k"][layer] if SCALES["k"] else 1.0
            vs = SCALES["v"][layer] if SCALES["v"] else 1.0
            CALLS["n"] += 1
            return _original(module, query, fp8_round(key, ks), fp8_round(value, vs), *args, **kwargs)

        mod.eager_attention_forward = rounded


def references(folder, base):
    model = models_lib.load(str(folder))
    CALLS["n"] = 0
    cases = [ref.case(model, c["prompt"], c["input_ids"], base["max_new_tokens"]) for c in base["cases"]]
    ref.check(CALLS["n"] > 0, f"{folder}: the patched attention was never called")
    out = dict(base)
    out["cases"] = cases
    out["kv_cache_dtype"] = "fp8_e4m3"
    worst = max(abs(a - b) for c, b0 in zip(cases, base["cases"])
                for a, b in zip(c["prefill_logprobs"][1:], b0["prefill_logprobs"][1:]))
    return out, worst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", default=str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures"))
    a = ap.parse_args()
    patch_attention()
    for folder in sorted((pathlib.Path(a.fixtures) / "models").iterdir()):
        if not (folder / "reference.json").exists():
            continue
        base = json.loads((folder / "reference.json").read_text())
        SCALES.update(k=None, v=None)
        out, worst = references(folder, base)
        (folder / "reference-fp8-kv.json").write_text(json.dumps(out, indent=1) + "\n")
        print(f"{folder.name:16s} fp8 KV moves prefill log-probs by up to {worst:.2e} from the exact reference")
        if folder.name in SCALED:
            SCALES.update(SCALED[folder.name])
            out, worst = references(folder, base)
            out["kv_scales"] = SCALED[folder.name]
            (folder / "reference-fp8-kv-scaled.json").write_text(json.dumps(out, indent=1) + "\n")
            print(f"{folder.name:16s} scaled: up to {worst:.2e}")


if __name__ == "__main__":
    main()
