"""An independent reading of a saved adapter: merge W += scale * B @ A from the files, by the rules an engine
implements (DESIGN.md §3 Adapters), into the base model, and compare with peft's own output. It pins down the
rules the fixtures rely on: which modules get a LoRA (target suffixes, layers_to_transform), rank and alpha
patterns (suffix match on the module path), rsLoRA scaling, fan_in_fan_out."""
import json
import math
import os
import re

import torch
from safetensors.torch import load_file

from .reference import FixtureError, check

PREFIX = "base_model.model."


def _pattern_value(patterns, module_path, default):
    for key, value in (patterns or {}).items():
        if module_path == key or module_path.endswith("." + key):
            return value
    return default


def _layer_index(module_path):
    m = re.search(r"\.(\d+)\.", module_path)
    return int(m.group(1)) if m else None


def expected_modules(model, cfg):
    """Module paths an engine must adapt: Linear/Conv1D modules whose name ends with a target, restricted to
    layers_to_transform when given."""
    targets = cfg["target_modules"]
    layers = cfg.get("layers_to_transform")
    out = set()
    for name, mod in model.named_modules():
        if not hasattr(mod, "weight") or not isinstance(getattr(mod, "weight"), torch.Tensor):
            continue
        leaf = name.rsplit(".", 1)[-1]
        if leaf not in targets:
            continue
        if layers is not None and _layer_index(name) not in layers:
            continue
        out.add(name)
    return out


@torch.no_grad()
def merged(base_model, adapter_dir):
    with open(os.path.join(adapter_dir, "adapter_config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    tensors = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
    paths = sorted(k[len(PREFIX):-len(".lora_A.weight")] for k in tensors if k.endswith(".lora_A.weight"))
    check(len(tensors) == 2 * len(paths), f"{adapter_dir}: tensors other than lora_A/lora_B in the file")
    want = expected_modules(base_model, cfg)
    check(set(paths) == want, f"{adapter_dir}: adapted modules {sorted(set(paths) ^ want)} differ from the rule")
    if getattr(base_model.config, "tie_word_embeddings", False) and "lm_head" in paths:
        base_model.lm_head.weight = torch.nn.Parameter(base_model.lm_head.weight.detach().clone())
    for path in paths:
        a = tensors[f"{PREFIX}{path}.lora_A.weight"].double()
        b = tensors[f"{PREFIX}{path}.lora_B.weight"].double()
        r = _pattern_value(cfg.get("rank_pattern"), path, cfg["r"])
        alpha = _pattern_value(cfg.get("alpha_pattern"), path, cfg["lora_alpha"])
        check(a.shape[0] == r and b.shape[1] == r, f"{adapter_dir}: {path} has rank {a.shape[0]}, rule says {r}")
        scale = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
        delta = scale * (b @ a)
        w = base_model.get_submodule(path).weight
        w += delta.T if cfg.get("fan_in_fan_out") else delta
    return base_model.eval()


def compare(base_model, adapter_dir, peft_model, ids_list, max_diff=1e-8):
    from .reference import logits_of
    m = merged(base_model, adapter_dir)
    worst = 0.0
    for ids in ids_list:
        la = torch.log_softmax(logits_of(m, ids), dim=-1)
        lb = torch.log_softmax(logits_of(peft_model, ids), dim=-1)
        worst = max(worst, (la - lb).abs().max().item())
    if worst > max_diff:
        raise FixtureError(f"{adapter_dir}: merged-by-rule model differs from peft by {worst:.2e}")
    return worst
