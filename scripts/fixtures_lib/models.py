"""The fixture models: one spec per architecture variant, random initialisation, saving, config rewriting."""
import copy
import json
import os

import torch
from transformers import (AutoModelForCausalLM, Gemma2Config, GPT2Config, GPTNeoXConfig, LlamaConfig,
                          Qwen2Config)

MAX_POS = 128
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _rope(theta, **extra):
    return {"rope_type": extra.pop("rope_type", "default"), "rope_theta": float(theta), **extra}


def _set(**attrs):
    """A knob check's config change: set attributes on a copy of the config."""
    def apply(cfg):
        for k, v in attrs.items():
            setattr(cfg, k, v)
    return apply


def _all_full(cfg):
    cfg.layer_types = ["full_attention"] * cfg.num_hidden_layers


def _slide_all_but_first(cfg):
    cfg.sliding_window = 8
    cfg.layer_types = ["full_attention"] + ["sliding_attention"] * (cfg.num_hidden_layers - 1)


# Each spec: name, tokenizer kind, config factory (vocab size + special ids -> config), storage dtype,
# config style, sharding, init std overrides, and knob checks. A knob check rebuilds the model with one config
# change and the same weights and requires the logits to move: proof that the fixture exercises that knob.
MODEL_SPECS = [
    dict(
        name="gpt2", tokenizer="byte_level", dtype="float32", style="5.x", sharded=False,
        config=lambda v, ids: GPT2Config(
            vocab_size=v, n_positions=MAX_POS, n_embd=64, n_layer=3, n_head=4, n_inner=160,
            activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
            layer_norm_epsilon=1e-5, scale_attn_by_inverse_layer_idx=True, tie_word_embeddings=True,
            bos_token_id=ids["bos_token_id"], eos_token_id=ids["eos_token_id"]),
        knobs=[("scale_attn_by_inverse_layer_idx=False", _set(scale_attn_by_inverse_layer_idx=False))],
    ),
    dict(
        name="gpt2-noscale", tokenizer="byte_level", dtype="float16", style="5.x", sharded=False,
        config=lambda v, ids: GPT2Config(
            vocab_size=v, n_positions=MAX_POS, n_embd=64, n_layer=2, n_head=4, n_inner=128,
            activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
            layer_norm_epsilon=1e-5, scale_attn_by_inverse_layer_idx=False, tie_word_embeddings=True,
            bos_token_id=ids["bos_token_id"], eos_token_id=ids["eos_token_id"]),
        knobs=[("scale_attn_by_inverse_layer_idx=True", _set(scale_attn_by_inverse_layer_idx=True))],
    ),
    dict(
        name="neox-parallel", tokenizer="byte_level", dtype="float32", style="5.x", sharded=False,
        config=lambda v, ids: GPTNeoXConfig(
            vocab_size=v, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=176,
            hidden_act="gelu", max_position_embeddings=MAX_POS, layer_norm_eps=1e-5,
            use_parallel_residual=True, tie_word_embeddings=False, attention_bias=True,
            rope_parameters=_rope(10000, partial_rotary_factor=0.25),
            bos_token_id=ids["bos_token_id"], eos_token_id=ids["eos_token_id"]),
        knobs=[("use_parallel_residual=False", _set(use_parallel_residual=False)),
               ("partial_rotary_factor=1.0", _set(rope_parameters=_rope(10000, partial_rotary_factor=1.0)))],
    ),
    dict(
        name="neox-sequential", tokenizer="byte_level", dtype="float32", style="4.x", sharded=False,
        config=lambda v, ids: GPTNeoXConfig(
            vocab_size=v, hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=128,
            hidden_act="gelu_new", max_position_embeddings=MAX_POS, layer_norm_eps=1e-5,
            use_parallel_residual=False, tie_word_embeddings=False, attention_bias=True,
            rope_parameters=_rope(1000, partial_rotary_factor=0.5),
            bos_token_id=ids["bos_token_id"], eos_token_id=ids["eos_token_id"]),
        knobs=[("use_parallel_residual=True", _set(use_parallel_residual=True)),
               ("rope_theta=10000", _set(rope_parameters=_rope(10000, partial_rotary_factor=0.5)))],
    ),
    dict(
        name="gemma2", tokenizer="llama_style", dtype="bfloat16", style="5.x", sharded=False,
        config=lambda v, ids: Gemma2Config(
            vocab_size=v, hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, head_dim=32, hidden_activation="gelu_pytorch_tanh",
            max_position_embeddings=MAX_POS, rms_norm_eps=1e-6, query_pre_attn_scalar=24, sliding_window=8,
            attn_logit_softcapping=20.0, final_logit_softcapping=15.0, rope_parameters=_rope(10000),
            tie_word_embeddings=True, **ids),
        # Small tied embeddings (x sqrt(hidden) at the input would otherwise dominate the residual stream and make
        # greedy decoding copy the last token), a larger final norm to keep the logits spread, large q/k so that
        # the attention softcap clips.
        std={"q_proj": 0.5, "k_proj": 0.5, "embed_tokens": 0.06}, norm_centers={"model.norm.weight": 3.0},
        knobs=[("attn_logit_softcapping=None", _set(attn_logit_softcapping=None)),
               ("final_logit_softcapping=None", _set(final_logit_softcapping=None)),
               ("query_pre_attn_scalar=head_dim", _set(query_pre_attn_scalar=32)),
               ("no sliding window", _all_full)],
    ),
    dict(
        name="qwen2", tokenizer="byte_level", dtype="float32", style="5.x", sharded=True,
        config=lambda v, ids: Qwen2Config(
            vocab_size=v, hidden_size=64, intermediate_size=176, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=MAX_POS, rms_norm_eps=1e-6,
            use_sliding_window=True, sliding_window=8, max_window_layers=1, tie_word_embeddings=False,
            rope_parameters=_rope(10000), **ids),
        expect_layer_types=["full_attention", "sliding_attention", "sliding_attention"],
        knobs=[("no sliding window", _all_full)],
    ),
    dict(
        # 4.x style with use_sliding_window=false but sliding_window=8 and max_window_layers=1 present, as many
        # real Qwen2 configs have: an engine that slides anyway gets visibly different logits (knob check).
        name="qwen2-tied", tokenizer="byte_level", dtype="float32", style="4.x", sharded=False,
        config=lambda v, ids: Qwen2Config(
            vocab_size=v, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=4, max_position_embeddings=MAX_POS, rms_norm_eps=1e-6,
            use_sliding_window=False, sliding_window=8, max_window_layers=1, tie_word_embeddings=True,
            rope_parameters=_rope(10000), **ids),
        extra_4x={"sliding_window": 8, "max_window_layers": 1},
        expect_layer_types=["full_attention", "full_attention"],
        knobs=[("sliding window 8 on layer 1 (must stay off)", _slide_all_but_first)],
    ),
    dict(
        name="llama", tokenizer="llama_style", dtype="float32", style="5.x", sharded=False,
        config=lambda v, ids: LlamaConfig(
            vocab_size=v, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=MAX_POS, rms_norm_eps=1e-5, hidden_act="silu",
            rope_parameters=_rope(10000, rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                  high_freq_factor=4.0, original_max_position_embeddings=32),
            tie_word_embeddings=True, **ids),
        knobs=[("no rope_scaling", _set(rope_parameters=_rope(10000)))],
    ),
    dict(
        name="llama-mqa", tokenizer="llama_style", dtype="float32", style="4.x", sharded=False,
        config=lambda v, ids: LlamaConfig(
            vocab_size=v, hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=1, head_dim=32, attention_bias=True, mlp_bias=True,
            max_position_embeddings=MAX_POS, rms_norm_eps=1e-5, hidden_act="silu",
            rope_parameters=_rope(10000, rope_type="linear", factor=2.0), tie_word_embeddings=False, **ids),
        # The older spelling of rope_scaling ("type" instead of "rope_type"), as pre-4.45 checkpoints have it.
        rope_scaling_4x={"type": "linear", "factor": 2.0},
        knobs=[("no rope_scaling", _set(rope_parameters=_rope(10000)))],
    ),
]


def is_norm_weight(name):
    leaf = name.rsplit(".", 1)
    return name.endswith("weight") and ("norm" in leaf[0].rsplit(".", 1)[-1] or ".ln_" in name)


@torch.no_grad()
def perturb(model, model_type, gen, std_overrides=None, norm_centers=None, base_std=0.25):
    """Every parameter random and non-trivial: matrices N(0, std), norm weights 1+N(0, .25) (Gemma stores w of
    (1+w), so N(0, .25) there), biases N(0, .1) — so that an op that is wrong or skipped moves the logits."""
    for name, p in model.named_parameters():
        if p.ndim >= 2:
            std = base_std
            for key, s in (std_overrides or {}).items():
                if key in name:
                    std = s
            p.copy_(torch.randn(p.shape, generator=gen) * std)
        elif is_norm_weight(name):
            center = (norm_centers or {}).get(name, 0.0 if model_type == "gemma2" else 1.0)
            p.copy_(center + torch.randn(p.shape, generator=gen) * 0.25)
        else:
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


def build(spec, tok_vocab_size, ids, seed):
    cfg = spec["config"](tok_vocab_size, ids)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
    gen = torch.Generator().manual_seed(seed)
    perturb(model, cfg.model_type, gen, spec.get("std"), spec.get("norm_centers"))
    model.eval()
    return model


def to_4x_style(cfg, spec):
    """Rewrite a config.json dict written by transformers 5.x the way transformers 4.x wrote it."""
    cfg = dict(cfg)
    rp = cfg.pop("rope_parameters")
    cfg.pop("layer_types", None)
    if "dtype" in cfg:
        cfg["torch_dtype"] = cfg.pop("dtype")
    if cfg["model_type"] == "gpt_neox":
        cfg["rotary_emb_base"] = rp["rope_theta"]
        cfg["rotary_pct"] = rp.get("partial_rotary_factor", 1.0)
        cfg["rope_scaling"] = None
    else:
        cfg["rope_theta"] = rp["rope_theta"]
        rest = {k: v for k, v in rp.items() if k != "rope_theta"}
        if rest.get("rope_type", "default") == "default":
            cfg["rope_scaling"] = None
        else:
            cfg["rope_scaling"] = spec.get("rope_scaling_4x", rest)
    cfg.update(spec.get("extra_4x", {}))
    return dict(sorted(cfg.items()))


def save(model, spec, folder):
    """Save in the spec's storage dtype (sharded if asked); returns the weight files written."""
    os.makedirs(folder, exist_ok=True)
    m = copy.deepcopy(model).to(DTYPES[spec["dtype"]])
    m.save_pretrained(folder, max_shard_size="100KB" if spec["sharded"] else "50GB")
    cfg_path = os.path.join(folder, "config.json")
    with open(cfg_path, encoding="utf-8") as f:
        cfg = json.load(f)
    cfg.pop("_name_or_path", None)  # machine-specific when present
    if spec["style"] == "4.x":
        cfg = to_4x_style(cfg, spec)
    with open(cfg_path, "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    return sorted(n for n in os.listdir(folder) if n.endswith(".safetensors") or n.endswith(".index.json"))


def load(folder, dtype=torch.float64):
    m = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager", dtype=dtype)
    m.eval()
    return m


def with_config_change(model, change):
    """The same weights under a changed config (float64, eager)."""
    cfg = copy.deepcopy(model.config)
    change(cfg)
    m = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").to(torch.float64)
    m.load_state_dict(model.state_dict())
    return m.eval()
