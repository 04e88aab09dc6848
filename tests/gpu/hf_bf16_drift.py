"""Usage: hf_bf16_drift.py [OUT.json]

How far transformers/peft themselves drift in bfloat16 from the float64
references in tests/fixtures (the yardstick for our bf16 numbers): per fixture
model and adapter, the largest prefill log-prob error and the share of greedy
positions that match before the first divergence, computed exactly as
tests/gpu/fixtures_test.cpp computes them for the engine."""
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


def load(model_dir):
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, attn_implementation="eager").cuda().eval()


def main():
    out = {}

    def report(name, worst, agree):
        out[name] = {"max_dlogprob": worst, "agreement": agree}
        print(f"HF-BF16 {name:<40} max|dlogprob| {worst:.2e}  greedy-agreement {100 * agree:5.1f}%", flush=True)

    for ref_path in sorted(ROOT.glob("models/*/reference.json")):
        ref = json.loads(ref_path.read_text())
        report(f"models/{ref_path.parts[-2]}", *measure(load(ref_path.parent), ref))
    from peft import PeftModel
    for ref_path in sorted(ROOT.glob("adapters/*/*/reference.json")):
        if ref_path.parts[-3] == "bad":
            continue
        ref = json.loads(ref_path.read_text())
        base = load(ROOT / "models" / ref_path.parts[-3])
        model = PeftModel.from_pretrained(base, ref_path.parent).to(torch.bfloat16).eval()
        report(f"{ref_path.parts[-3]}/{ref_path.parts[-2]}", *measure(model, ref))
    if len(sys.argv) > 1:
        pathlib.Path(sys.argv[1]).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    sys.exit(main())
