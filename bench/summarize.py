"""Prints the GPU benchmark table from `lorax-engine bench` JSON lines and,
when given, transformers+peft reference lines of the same run."""
import json
import sys


def load(path):
    try:
        with open(path) as f:
            return [json.loads(l) for l in f if l.strip().startswith("{")]
    except FileNotFoundError:
        return []


ours = load(sys.argv[1])
ref = load(sys.argv[2]) if len(sys.argv) > 2 else []
ref_tps = {(r["model"], r["batch"], r["adapters"]): r["tokens_per_s"] for r in ref}
base = {(r["model"], r["batch"]): r["tokens_per_s"] for r in ours if r["bench"] == "decode" and r["adapters"] == 0}
print(f"{'model':<12} {'batch':>5} {'adapters':>8} {'tok/s':>10} {'step ms':>8} {'%HBM roof':>9} "
      f"{'vs no-LoRA':>10} {'vs HF+peft':>10}")
for r in ours:
    if r["bench"] != "decode":
        continue
    key = (r["model"], r["batch"], r["adapters"])
    roof = f"{r['pct_of_hbm_roofline']:.1f}" if "pct_of_hbm_roofline" in r else "-"
    rel = r["tokens_per_s"] / base[(r["model"], r["batch"])] if (r["model"], r["batch"]) in base else float("nan")
    hf = f"{r['tokens_per_s'] / ref_tps[key]:.1f}x" if key in ref_tps else "-"
    print(f"{r['model']:<12} {r['batch']:>5} {r['adapters']:>8} {r['tokens_per_s']:>10.1f} {r['step_ms']:>8.2f} "
          f"{roof:>9} {rel:>10.2f} {hf:>10}")
for r in ours:
    if r["bench"] == "prefill":
        pct = f"{r['pct_of_gemm_peak']:.1f}% of bf16 GEMM peak ({r['tflops']:.0f} TFLOP/s)" if "tflops" in r else ""
        print(f"prefill {r['model']:<12} {r['prompt_len']} tokens: {r['tokens_per_s']:.0f} tok/s {pct}")
for r in ref:
    print(f"reference transformers+peft {r['model']} batch {r['batch']} adapters {r['adapters']}: "
          f"{r['tokens_per_s']:.1f} tok/s")
