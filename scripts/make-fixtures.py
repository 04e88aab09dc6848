#!/usr/bin/env python3
"""Write the test fixtures of Lorax++: tiny random models of every architecture variant, their tokenizers, PEFT
adapters, and transformers'/peft's reference outputs (float64, eager attention) into tests/fixtures/.

    python scripts/make-fixtures.py --out tests/fixtures [--seed 0]

Needs torch, transformers 5.x, peft, tokenizers, safetensors. Runs on the CPU (float64) even where a GPU exists:
the models are tiny and the CPU results do not depend on the GPU's kernels. Deterministic given --seed.
See tests/fixtures/README.md for what is written and what each variant tests.
"""
import argparse
import json
import os
import shutil
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import transformers  # noqa: E402

from fixtures_lib import adapters as adapters_lib  # noqa: E402
from fixtures_lib import merge_check  # noqa: E402
from fixtures_lib import models as models_lib  # noqa: E402
from fixtures_lib import reference as ref  # noqa: E402
from fixtures_lib import text, toks  # noqa: E402
from fixtures_lib.reference import FixtureError, check  # noqa: E402

MIN_KNOB_EFFECT = 1e-2  # a knob check passes when some log-prob moves by more than this
MIN_ADAPTER_CHANGED = 4  # of 6 prompts, at least this many greedy continuations must change under an adapter


def stable_seed(seed, *names):
    return (seed * 1_000_003 + zlib.crc32("/".join(names).encode())) % (2**31)


def write_json(path, obj):
    """Indented, but each list item of a top-level list (a case, a model row) on one line: readable and small."""
    lines = ["{"]
    items = list(obj.items())
    for i, (k, v) in enumerate(items):
        if isinstance(v, list) and v:
            body = ",\n".join("  " + json.dumps(x, ensure_ascii=False) for x in v)
            text_v = "[\n" + body + "\n ]"
        else:
            text_v = json.dumps(v, ensure_ascii=False)
        lines.append(f" {json.dumps(k)}: {text_v}" + ("," if i < len(items) - 1 else ""))
    lines.append("}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    with open(path, encoding="utf-8") as f:
        if json.load(f) != obj:
            raise FixtureError(f"{path}: JSON does not round-trip")


def folder_kb(path):
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, n)) for n in files)
    return total / 1024


def build_tokenizers(out_dir):
    lines = [ln for ln in text.CORPUS.splitlines() if ln.strip()]
    built = {
        "byte_level": toks.byte_level_bpe(lines, vocab_size=512),
        "llama_style": toks.llama_style_bpe(lines, vocab_size=600),
    }
    for kind, tok in built.items():
        check(400 <= tok.get_vocab_size() <= 620, f"{kind} tokenizer: vocab {tok.get_vocab_size()} out of range")
        # Round trip through the saved file, as the engine will read it.
        tmp = os.path.join(out_dir, f".{kind}-check.json")
        tok.save(tmp)
        again = type(tok).from_file(tmp)
        os.remove(tmp)
        for p in text.PROMPTS:
            ids = again.encode(p, add_special_tokens=False).ids
            check(again.decode(ids) == p, f"{kind} tokenizer does not round-trip {p!r}")
    return built


def check_transformers_tokenizer(folder, tok, prompts):
    """transformers' AutoTokenizer over the saved files must agree with the tokenizers library."""
    from transformers import AutoTokenizer
    t = AutoTokenizer.from_pretrained(folder)
    for p in prompts:
        check(t(p)["input_ids"] == tok.encode(p, add_special_tokens=True).ids,
              f"{folder}: AutoTokenizer disagrees on {p!r}")
    rendered = t.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                     add_generation_prompt=True)
    check(isinstance(rendered, str) and "Hi" in rendered, f"{folder}: chat template does not render")


def make_model(spec, out_dir, tok, seed, min_margin):
    name = spec["name"]
    folder = os.path.join(out_dir, "models", name)
    kind = spec["tokenizer"]
    model = models_lib.build(spec, tok.get_vocab_size(), toks.special_ids(tok, kind), stable_seed(seed, name))
    files = models_lib.save(model, spec, folder)
    toks.save_tokenizer(tok, kind, folder, models_lib.MAX_POS)
    check_transformers_tokenizer(folder, tok, text.PROMPTS[:3])

    check(("model.safetensors.index.json" in files) == spec["sharded"], f"{name}: sharding not as asked ({files})")
    if spec["sharded"]:
        check(len([f for f in files if f.endswith(".safetensors")]) >= 3, f"{name}: too few shards ({files})")
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        saved_cfg = json.load(f)
    if spec["style"] == "5.x":
        check("rope_parameters" in saved_cfg or saved_cfg["model_type"] == "gpt2",
              f"{name}: 5.x config without rope_parameters")
    else:
        check("rope_parameters" not in saved_cfg and "layer_types" not in saved_cfg, f"{name}: not 4.x style")

    # The reference comes from the saved files, reloaded and upcast to float64: for bf16/fp16 checkpoints
    # that is the rounded weights, and a config that transformers reads differently from what we meant shows up
    # in the comparison with the in-memory model below.
    loaded = models_lib.load(folder)
    if "expect_layer_types" in spec:
        check(list(loaded.config.layer_types) == spec["expect_layer_types"],
              f"{name}: layer_types {loaded.config.layer_types} != {spec['expect_layer_types']}")
    # Rounded to the storage dtype, in a fresh float64 model (casting the model itself would also round
    # its RoPE inv_freq buffers, which the loaded model recomputes).
    in_memory = models_lib.with_config_change(model.to(models_lib.DTYPES[spec["dtype"]]), lambda c: None)

    def encode(p):
        return tok.encode(p, add_special_tokens=True).ids

    long_ids = encode(text.PROMPTS[-1])
    same = ref.max_logprob_diff(in_memory, loaded, long_ids)
    check(same < 1e-9, f"{name}: reloaded checkpoint differs from the in-memory model by {same:.2e}")
    health = ref.health(loaded, long_ids, name)
    knobs = []
    for label, change in spec.get("knobs", []):
        d = ref.max_logprob_diff(loaded, models_lib.with_config_change(loaded, change), long_ids)
        check(d > MIN_KNOB_EFFECT, f"{name}: knob '{label}' barely matters (max |dlogprob| {d:.2e})")
        knobs.append(f"{label}: {d:.2f}")

    cases = ref.choose_cases(loaded, encode, min_margin)
    distinct = sum(len(set(c["greedy_ids"])) for c in cases) / len(cases)
    check(distinct >= 3, f"{name}: degenerate greedy continuations ({distinct:.1f} distinct tokens per case)")
    reference = ref.reference_json(name, saved_cfg["model_type"], spec["dtype"], spec["style"], spec["sharded"],
                                   cases)
    write_json(os.path.join(folder, "reference.json"), reference)
    return loaded, cases, {
        "name": name, "model_type": saved_cfg["model_type"], "tokenizer": kind, "weights_dtype": spec["dtype"],
        "config_style": spec["style"], "sharded": spec["sharded"], "weight_files": files,
        "params": sum(p.numel() for p in loaded.parameters()), "health": health, "knob_effects": knobs,
        "prompt_lengths": [len(c["input_ids"]) for c in cases],
        "min_margin": min(c["greedy_min_margin"] for c in cases), "kb": round(folder_kb(folder), 1),
        "greedy_distinct": round(distinct, 1),
    }


def make_adapter(base_name, spec, out_dir, base_cases, seed, min_margin):
    base_dir = os.path.join(out_dir, "models", base_name)
    adir = os.path.join(out_dir, "adapters", base_name, spec["name"])
    prompts_ids = [(c["prompt"], c["input_ids"]) for c in base_cases]
    last_err = None
    for attempt in range(6):
        in_memory, n_modules = adapters_lib.make(base_dir, spec, adir, stable_seed(seed, base_name, spec["name"],
                                                                                   str(attempt)),
                                                 ratio=0.6, base_name=base_name)
        loaded = adapters_lib.load(base_dir, adir)
        same = ref.max_logprob_diff(in_memory, loaded, prompts_ids[-1][1])
        check(same < 1e-9, f"{base_name}/{spec['name']}: reloaded adapter differs by {same:.2e}")
        cases, margin_ok = ref.cases_for(loaded, prompts_ids, min_margin)
        changed = sum(c["greedy_ids"] != b["greedy_ids"] for c, b in zip(cases, base_cases))
        if margin_ok and changed >= MIN_ADAPTER_CHANGED:
            break
        last_err = f"margin ok={margin_ok}, greedy changed on {changed}/6 prompts"
    else:
        raise FixtureError(f"{base_name}/{spec['name']}: no good seed in 6 tries ({last_err})")
    merge_diff = merge_check.compare(models_lib.load(base_dir), adir, loaded, [ids for _, ids in prompts_ids])
    with open(os.path.join(base_dir, "reference.json"), encoding="utf-8") as f:
        base_ref = json.load(f)
    reference = ref.reference_json(spec["name"], base_ref["model_type"], base_ref["weights_dtype"],
                                   base_ref["config_style"], base_ref["sharded"], cases)
    write_json(os.path.join(adir, "reference.json"), reference)
    with open(os.path.join(adir, "adapter_config.json"), encoding="utf-8") as f:
        acfg = json.load(f)
    return {
        "base": base_name, "name": spec["name"], "r": acfg["r"], "lora_alpha": acfg["lora_alpha"],
        "use_rslora": acfg.get("use_rslora", False), "target_modules": sorted(acfg["target_modules"]),
        "rank_pattern": acfg.get("rank_pattern") or {}, "alpha_pattern": acfg.get("alpha_pattern") or {},
        "layers_to_transform": acfg.get("layers_to_transform"), "fan_in_fan_out": acfg.get("fan_in_fan_out"),
        "weights_dtype": spec.get("dtype", "float32"), "modules_adapted": n_modules,
        "greedy_changed": f"{changed}/6", "min_margin": min(c["greedy_min_margin"] for c in cases),
        "merged_by_rule_diff": float(f"{merge_diff:.1e}"), "kb": round(folder_kb(adir), 1),
    }


def print_table(rows, cols):
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(cols, widths)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="tests/fixtures")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-margin", type=float, default=1e-3, help="smallest allowed top-1/top-2 logit gap")
    ap.add_argument("--only", default="", help="comma-separated model names (for quick local checks)")
    ap.add_argument("--no-adapters", action="store_true", help="skip adapters (quick local checks)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    t0 = time.time()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    for sub in ("models", "adapters"):
        shutil.rmtree(os.path.join(out, sub), ignore_errors=True)

    try:
        tokenizers = build_tokenizers(out)
        specs = [s for s in models_lib.MODEL_SPECS if not args.only or s["name"] in args.only.split(",")]
        model_rows, adapter_rows, base_cases = [], [], {}
        for spec in specs:
            _, cases, row = make_model(spec, out, tokenizers[spec["tokenizer"]], args.seed, args.min_margin)
            base_cases[spec["name"]] = cases
            model_rows.append(row)
            print(f"[{time.time() - t0:6.1f}s] model {spec['name']} ok", flush=True)
        bad = []
        if not args.no_adapters:
            for base_name, specs_a in adapters_lib.ADAPTER_SPECS.items():
                if base_name not in base_cases:
                    continue
                for aspec in specs_a:
                    adapter_rows.append(make_adapter(base_name, aspec, out, base_cases[base_name], args.seed,
                                                     args.min_margin))
                    print(f"[{time.time() - t0:6.1f}s] adapter {base_name}/{aspec['name']} ok", flush=True)
            if "llama" in base_cases:
                bad = adapters_lib.make_bad(os.path.join(out, "adapters"),
                                            os.path.join(out, "adapters", "llama", "attn-r8"),
                                            stable_seed(args.seed, "bad"))
        manifest = {
            "generated_by": "scripts/make-fixtures.py",
            "seed": args.seed,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "peft": __import__("peft").__version__, "tokenizers": __import__("tokenizers").__version__},
            "sliding_window_rule": "a query at position i attends to keys at positions j with i - W < j <= i",
            "models": model_rows,
            "adapters": adapter_rows,
            "bad_adapters": {n: f"adapters/bad/{n}" for n in bad},
        }
        write_json(os.path.join(out, "manifest.json"), manifest)
        total_kb = folder_kb(os.path.join(out, "models")) + folder_kb(os.path.join(out, "adapters"))
        check(total_kb < 15 * 1024, f"fixtures too large: {total_kb / 1024:.1f} MB")
    except FixtureError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1

    print()
    print_table(model_rows, ["name", "model_type", "weights_dtype", "config_style", "sharded", "params", "kb",
                             "prompt_lengths", "min_margin", "greedy_distinct", "health"])
    print()
    print_table([{"name": r["name"], "knob_effects (max |dlogprob|)": "; ".join(r["knob_effects"])}
                 for r in model_rows], ["name", "knob_effects (max |dlogprob|)"])
    if adapter_rows:
        print()
        print_table(adapter_rows, ["base", "name", "r", "lora_alpha", "use_rslora", "weights_dtype",
                                   "modules_adapted", "greedy_changed", "min_margin", "merged_by_rule_diff", "kb"])
    print(f"\nbad adapters: {', '.join(bad) or '-'}")
    print(f"total {total_kb / 1024:.2f} MB in {out}, {time.time() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
