#!/usr/bin/env python3
"""peft's references for per-request adapter merging (LoRAX `merged_adapters`).

Writes three rank-8 PEFT adapters of the llama fixture model with partly overlapping target modules
(tests/fixtures/adapters/llama/merge-{a,b,c}, random A and B as make-fixtures.py makes them), then for each case
below merges them with peft's LoraModel.add_weighted_adapter in float64 and writes
tests/fixtures/merges/llama/<case>/:
  adapter_config.json, adapter_model.safetensors   the merged adapter as peft holds it (float32)
  reference.json                                   the merge's parameters and, with it applied, the base
                                                   prompts' prefill log-probs and 12 greedy tokens (as reference.json)

    python scripts/make-merge-references.py [--fixtures tests/fixtures]

DARE draws with torch.bernoulli, which nothing outside torch reproduces: its cases use density 1 (no draw), where
peft's prune() leaves the tensors as they are; below 1 the tests check DARE's rule statistically instead.
Needs torch, transformers 5.x and peft (the GPU machine has them); computes on the CPU.
"""
import json
import os
import pathlib
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from peft import PeftModel, get_peft_model_state_dict  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

from fixtures_lib import cli  # noqa: E402
from fixtures_lib import adapters as adapters_lib  # noqa: E402
from fixtures_lib import reference as ref  # noqa: E402

SOURCES = [
    dict(name="merge-a", r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "o_proj"]),
    dict(name="merge-b", r=8, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]),
    dict(name="merge-c", r=8, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "gate_proj"]),
]
IDS = [s["name"] for s in SOURCES]
CASES = [
    dict(name="linear", ids=IDS, weights=[0.6, 0.3, 0.9], merge_strategy="linear"),
    dict(name="linear-one", ids=["merge-b"], weights=[1.7], merge_strategy="linear"),
    dict(name="ties-total", ids=IDS, weights=[0.6, 0.3, 0.9], merge_strategy="ties", density=0.5,
         majority_sign_method="total"),
    dict(name="ties-frequency", ids=IDS, weights=[1.0, 0.5, 0.8], merge_strategy="ties", density=0.3,
         majority_sign_method="frequency"),
    dict(name="dare_linear-dense", ids=IDS, weights=[0.6, 0.3, 0.9], merge_strategy="dare_linear", density=1.0),
    dict(name="dare_ties-dense", ids=IDS, weights=[0.4, 0.9, 0.7], merge_strategy="dare_ties", density=1.0,
         majority_sign_method="frequency"),
]


def main():
    a = cli.parse_args(__doc__)
    fixtures = pathlib.Path(a.fixtures)
    base_dir = fixtures / "models" / "llama"
    out_root = fixtures / "adapters" / "llama"
    for i, spec in enumerate(SOURCES):
        adapters_lib.make(str(base_dir), spec, str(out_root / spec["name"]), seed=1000 + i, ratio=0.5, base_name="llama")
    base_ref = json.loads((base_dir / "reference.json").read_text())
    merges = fixtures / "merges" / "llama"
    if merges.exists():
        shutil.rmtree(merges)
    for case in CASES:
        base = AutoModelForCausalLM.from_pretrained(str(base_dir), attn_implementation="eager", dtype=torch.float64)
        model = PeftModel.from_pretrained(base, str(out_root / IDS[0]), adapter_name=IDS[0])
        for name in IDS[1:]:
            model.load_adapter(str(out_root / name), adapter_name=name)
        model = model.to(torch.float64).eval()
        kw = {k: case[k] for k in ("density", "majority_sign_method") if k in case}
        model.add_weighted_adapter(adapters=case["ids"], weights=case["weights"], adapter_name="merged",
                                   combination_type=case["merge_strategy"], **kw)
        model.set_adapter("merged")
        out = merges / case["name"]
        out.mkdir(parents=True)
        state = get_peft_model_state_dict(model, adapter_name="merged")
        save_file({k: v.to(torch.float32).contiguous() for k, v in state.items()}, str(out / "adapter_model.safetensors"))
        model.peft_config["merged"].save_pretrained(str(out))
        adapters_lib.fix_adapter_config(str(out), "llama")
        cases = [ref.case(model, c["prompt"], c["input_ids"], base_ref["max_new_tokens"]) for c in base_ref["cases"]]
        changed = sum(c["greedy_ids"] != b["greedy_ids"] for c, b in zip(cases, base_ref["cases"]))
        ref.check(changed > 0, f"merge {case['name']}: the merged adapter changes no greedy continuation")
        (out / "reference.json").write_text(json.dumps(
            {"name": case["name"], "merge": {k: v for k, v in case.items() if k != "name"},
             "max_new_tokens": base_ref["max_new_tokens"], "cases": cases}, indent=1) + "\n")
        print(f"{case['name']:20s} {len(state)} tensors, greedy changed on {changed}/{len(cases)} prompts")


if __name__ == "__main__":
    main()
