"""Usage: hf_bf16_drift.py [OUT.json]

How far transformers/peft themselves drift in bfloat16 from the float64
references in tests/fixtures (the yardstick for our bf16 numbers): per fixture
model and adapter, the largest prefill log-prob error and the share of greedy
positions that match before the first divergence, computed exactly as
tests/gpu/fixtures_test.cpp computes them for the engine.

On these small, deliberately sensitive fixtures greedy agreement in bf16 hangs
on near-ties: two sound attention implementations disagree by tens of points.
So the yardstick is transformers' worst over its own two implementations,
"eager" (softmax weights kept in float32 until the PV product) and "sdpa"
(flash-style kernels that round them to bf16, as the engine's tensor-core
prefill does). Gemma 2 stays eager-only: sdpa cannot apply its logit softcap."""
import json
import pathlib
import sys

import torch
from transformers import AutoModelForCausalLM

ROOT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "fixtures"


def measure(model, ref):
    worst, matched, total = 0.0, 0, 0
    for case in ref["cases"]:
        ids = torch.tensor([case["input_ids"]], device="cuda")
        with torch.no_grad():
            logits = model(ids).logits.float()[0]
        lp = torch.log_softmax(logits, -1)
        for i in range(1, len(case["input_ids"])):
            worst = max(worst, abs(lp[i - 1, case["input_ids"][i]].item() - case["prefill_logprobs"][i]))
        seq = list(case["input_ids"])
        want = case["greedy_ids"]
        for t in range(len(want)):
            with torch.no_grad():
                nxt = int(model(torch.tensor([seq], device="cuda")).logits[0, -1].float().argmax())
            if nxt != want[t]:
                break
            matched += 1
            seq.append(nxt)
        total += len(want)
    return worst, matched / total


def load(model_dir, impl):
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, attn_implementation=impl).cuda().eval()


def implementations(model_dir):
    config = json.loads((pathlib.Path(model_dir) / "config.json").read_text())
    return ["eager"] if config.get("model_type") == "gemma2" else ["eager", "sdpa"]


def main():
    out = {}

    def report(name, model_dir, make_model, ref):
        runs = {impl: measure(make_model(impl), ref) for impl in implementations(model_dir)}
        worst = max(w for w, _ in runs.values())
        agree = min(a for _, a in runs.values())
        out[name] = {"max_dlogprob": worst, "agreement": agree,
                     "by_implementation": {k: {"max_dlogprob": w, "agreement": a} for k, (w, a) in runs.items()}}
        each = "  ".join(f"{k} {100 * a:5.1f}%" for k, (_, a) in runs.items())
        print(f"HF-BF16 {name:<40} max|dlogprob| {worst:.2e}  greedy-agreement {100 * agree:5.1f}%  ({each})",
              flush=True)

    for ref_path in sorted(ROOT.glob("models/*/reference.json")):
        ref = json.loads(ref_path.read_text())
        report(f"models/{ref_path.parts[-2]}", ref_path.parent, lambda impl: load(ref_path.parent, impl), ref)
    # The trained demo model (tests/fixtures/demo holds its reference).
    demo = ROOT.parents[1] / "models" / "demo"
    report("fixtures/demo", demo, lambda impl: load(demo, impl), json.loads((ROOT / "demo" / "reference.json").read_text()))
    from peft import PeftModel
    for ref_path in sorted(ROOT.glob("adapters/*/*/reference.json")):
        if ref_path.parts[-3] == "bad":
            continue
        ref = json.loads(ref_path.read_text())
        base_dir = ROOT / "models" / ref_path.parts[-3]

        def make(impl):
            return PeftModel.from_pretrained(load(base_dir, impl), ref_path.parent).to(torch.bfloat16).eval()

        report(f"{ref_path.parts[-3]}/{ref_path.parts[-2]}", base_dir, make, ref)
    # Last (the patch stays installed): bf16 with its keys and values rounded through e4m3, against the float64
    # FP8-KV references, the yardstick for --kv-cache-dtype fp8 in bfloat16. Eager only: the patch rounds inside
    # the eager attention function.
    import importlib.util
    spec = importlib.util.spec_from_file_location("fp8_refs", ROOT.parents[1] / "scripts" / "make-fp8-kv-references.py")
    fp8_refs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fp8_refs)
    fp8_refs.patch_attention()
    for ref_path in sorted(ROOT.glob("models/*/reference-fp8-kv.json")):
        ref = json.loads(ref_path.read_text())
        w, a = measure(load(ref_path.parent, "eager"), ref)
        name = f"fp8-kv/models/{ref_path.parts[-2]}"
        out[name] = {"max_dlogprob": w, "agreement": a}
        print(f"HF-BF16 {name:<40} max|dlogprob| {w:.2e}  greedy-agreement {100 * a:5.1f}%  (eager, K/V through e4m3)",
              flush=True)
    if len(sys.argv) > 1:
        pathlib.Path(sys.argv[1]).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    sys.exit(main())
