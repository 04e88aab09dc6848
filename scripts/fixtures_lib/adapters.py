"""PEFT LoRA adapters of the fixture models, with random (non-zero) A and B."""
import json
import math
import os
import shutil

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from transformers import AutoModelForCausalLM, LlamaConfig

ALL_LLAMA = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ALL_GPT2 = ["c_attn", "c_proj", "c_fc"]
ALL_NEOX = ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"]


def _llama_like(lm_head=False, layers=(1,), dtype="float32"):
    head = ["lm_head"] if lm_head else []
    return [
        dict(name="attn-r8" + ("-lm_head" if lm_head else ""), r=8, lora_alpha=16,
             target_modules=["q_proj", "v_proj"] + head, dtype=dtype),
        dict(name="all-r16-rslora", r=16, lora_alpha=32, use_rslora=True, target_modules=ALL_LLAMA, dtype=dtype),
        dict(name="all-r4-patterns", r=4, lora_alpha=6, target_modules=ALL_LLAMA,
             rank_pattern={"o_proj": 1, "layers.1.mlp.down_proj": 8}, alpha_pattern={"k_proj": 2, "o_proj": 3},
             dtype=dtype),
        dict(name="mlp-r1-layers", r=1, lora_alpha=4, target_modules=["gate_proj", "up_proj", "down_proj"],
             layers_to_transform=list(layers), dtype=dtype),
    ]


ADAPTER_SPECS = {
    "llama": _llama_like(),
    # qwen2 is untied: its first adapter also targets lm_head.
    "qwen2": _llama_like(lm_head=True, layers=(0, 2)),
    # gemma2's adapters are stored in bfloat16 like its weights.
    "gemma2": _llama_like(layers=(1, 2), dtype="bfloat16"),
    "gpt2": [
        dict(name="attn-r8", r=8, lora_alpha=16, target_modules=["c_attn"], fan_in_fan_out=True),
        dict(name="all-r16-rslora", r=16, lora_alpha=32, use_rslora=True, target_modules=ALL_GPT2,
             fan_in_fan_out=True),
        dict(name="all-r4-patterns", r=4, lora_alpha=6, target_modules=ALL_GPT2, fan_in_fan_out=True,
             rank_pattern={"mlp.c_proj": 1, "h.2.attn.c_attn": 8}, alpha_pattern={"attn.c_proj": 2}),
        dict(name="mlp-r1-layers", r=1, lora_alpha=4, target_modules=["c_fc", "c_proj"], fan_in_fan_out=True,
             layers_to_transform=[1]),
    ],
    "neox-parallel": [
        dict(name="attn-r8", r=8, lora_alpha=16, target_modules=["query_key_value"]),
        dict(name="all-r16-rslora", r=16, lora_alpha=32, use_rslora=True, target_modules=ALL_NEOX),
        dict(name="all-r4-patterns", r=4, lora_alpha=6, target_modules=ALL_NEOX,
             rank_pattern={"dense_4h_to_h": 1, "layers.1.attention.query_key_value": 8},
             alpha_pattern={"attention.dense": 2}),
        dict(name="mlp-r1-layers", r=1, lora_alpha=4, target_modules=["dense_h_to_4h", "dense_4h_to_h"],
             layers_to_transform=[1]),
    ],
}

LORA_KEYS = ("r", "lora_alpha", "target_modules", "use_rslora", "rank_pattern", "alpha_pattern",
             "layers_to_transform", "fan_in_fan_out")


def lora_config(spec):
    kw = {k: spec[k] for k in LORA_KEYS if k in spec}
    return LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.0, bias="none", **kw)


@torch.no_grad()
def randomize(peft_model, gen, ratio):
    """peft initialises B to zero (a no-op adapter). Make A and B random and scale B so that
    ||scaling * B @ A|| = ratio * ||W|| for every adapted module: big enough to change greedy tokens."""
    count = 0
    for _, mod in peft_model.named_modules():
        if not isinstance(mod, LoraLayer) or "default" not in mod.lora_A:
            continue
        a = mod.lora_A["default"].weight
        b = mod.lora_B["default"].weight
        a.copy_(torch.randn(a.shape, generator=gen) / math.sqrt(a.shape[1]))
        b.copy_(torch.randn(b.shape, generator=gen))
        w = mod.get_base_layer().weight
        delta = mod.scaling["default"] * (b.double() @ a.double())
        b.mul_(ratio * w.double().norm().item() / delta.norm().item())
        count += 1
    return count


def make(base_dir, spec, out_dir, seed, ratio, base_name):
    """Create, randomise and save one adapter; returns the in-memory PEFT model in float64."""
    base = AutoModelForCausalLM.from_pretrained(base_dir, attn_implementation="eager", dtype=torch.float32)
    pm = get_peft_model(base, lora_config(spec))
    n = randomize(pm, torch.Generator().manual_seed(seed), ratio)
    if n == 0:
        raise RuntimeError(f"adapter {spec['name']}: no module adapted")
    if spec.get("dtype", "float32") != "float32":
        dt = {"bfloat16": torch.bfloat16, "float16": torch.float16}[spec["dtype"]]
        for _, mod in pm.named_modules():
            if isinstance(mod, LoraLayer) and "default" in mod.lora_A:
                mod.lora_A["default"].to(dt)
                mod.lora_B["default"].to(dt)
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    pm.save_pretrained(out_dir, safe_serialization=True, save_embedding_layers=False)
    fix_adapter_config(out_dir, base_name)
    return pm.to(torch.float64).eval(), n


def fix_adapter_config(out_dir, base_name):
    """base_model_name_or_path would be this machine's absolute path: name the fixture model instead; keep
    target_modules in a fixed order (peft writes a set); drop peft's boilerplate model card."""
    path = os.path.join(out_dir, "adapter_config.json")
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    cfg["base_model_name_or_path"] = base_name
    if isinstance(cfg.get("target_modules"), list):
        cfg["target_modules"] = sorted(cfg["target_modules"])
    card = os.path.join(out_dir, "README.md")
    if os.path.exists(card):
        os.remove(card)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def load(base_dir, adapter_dir):
    base = AutoModelForCausalLM.from_pretrained(base_dir, attn_implementation="eager", dtype=torch.float64)
    pm = PeftModel.from_pretrained(base, adapter_dir)
    return pm.to(torch.float64).eval()


def make_bad(out_root, good_adapter_dir, seed):
    """Adapters that must be refused with a clear error: wrong shapes, truncated weights, no weights, bad JSON."""
    bad = os.path.join(out_root, "bad")
    if os.path.exists(bad):
        shutil.rmtree(bad)
    os.makedirs(bad)
    # Made for a llama with hidden size 96 (and head_dim 24), labelled as an adapter of the 64-wide "llama".
    cfg = LlamaConfig(vocab_size=580, hidden_size=96, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    torch.manual_seed(seed)
    other = AutoModelForCausalLM.from_config(cfg)
    pm = get_peft_model(other, LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8,
                                          target_modules=["q_proj", "v_proj"]))
    randomize(pm, torch.Generator().manual_seed(seed), 0.5)
    pm.save_pretrained(os.path.join(bad, "wrong-shape"), safe_serialization=True)
    fix_adapter_config(os.path.join(bad, "wrong-shape"), "llama")

    src = os.path.join(good_adapter_dir, "adapter_model.safetensors")
    trunc = os.path.join(bad, "truncated")
    os.makedirs(trunc)
    shutil.copy(os.path.join(good_adapter_dir, "adapter_config.json"), trunc)
    with open(src, "rb") as f:
        data = f.read()
    with open(os.path.join(trunc, "adapter_model.safetensors"), "wb") as f:
        f.write(data[: len(data) // 2])

    nw = os.path.join(bad, "no-weights")
    os.makedirs(nw)
    shutil.copy(os.path.join(good_adapter_dir, "adapter_config.json"), nw)

    bj = os.path.join(bad, "bad-config-json")
    os.makedirs(bj)
    shutil.copy(src, bj)
    with open(os.path.join(bj, "adapter_config.json"), "w", encoding="utf-8") as f:
        f.write('{"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"\n')
    names = ["wrong-shape", "truncated", "no-weights", "bad-config-json"]
    # The base model each is meant to be (wrongly) loaded on, for the C++ tests.
    for n in names:
        with open(os.path.join(bad, n, "base_model.txt"), "w", encoding="utf-8") as f:
            f.write("llama\n")
    return names
