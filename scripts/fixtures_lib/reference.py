"""Reference outputs: prefill log-probabilities and a greedy continuation, computed in float64."""
import math

import torch

from .text import PROMPTS, SLOTS

MAX_NEW_TOKENS = 12


class FixtureError(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise FixtureError(msg)


@torch.no_grad()
def logits_of(model, ids):
    out = model(input_ids=torch.tensor([ids], dtype=torch.long), use_cache=False)
    return out.logits[0].to(torch.float64)


@torch.no_grad()
def case(model, prompt, ids, n_new=MAX_NEW_TOKENS):
    """prefill_logprobs[i] = log_softmax(logits[i-1])[ids[i]]; greedy by full recompute, never stopping at EOS."""
    logits = logits_of(model, ids)
    lp = torch.log_softmax(logits, dim=-1)
    prefill = [None] + [lp[i - 1, ids[i]].item() for i in range(1, len(ids))]
    seq = list(ids)
    greedy, margin = [], math.inf
    last = logits[-1]
    for step in range(n_new):
        if step > 0:
            last = logits_of(model, seq)[-1]
        top = torch.topk(last, 2)
        margin = min(margin, (top.values[0] - top.values[1]).item())
        nxt = int(top.indices[0])
        greedy.append(nxt)
        seq.append(nxt)
    return {"prompt": prompt, "input_ids": list(ids), "prefill_logprobs": prefill, "greedy_ids": greedy,
            "greedy_min_margin": margin}


def choose_cases(model, encode, min_margin):
    """One prompt per slot of text.SLOTS: right token count, distinct lengths, greedy margins >= min_margin."""
    cases, used_lengths, used_prompts, rejected = [], set(), set(), []
    for slot, lo, hi, needs_unicode in SLOTS:
        found = None
        for p in PROMPTS:
            if p in used_prompts or (not p.isascii()) != needs_unicode:
                continue
            ids = encode(p)
            if not (lo <= len(ids) <= hi) or len(ids) in used_lengths:
                continue
            c = case(model, p, ids)
            if c["greedy_min_margin"] < min_margin:
                rejected.append((p, c["greedy_min_margin"]))
                continue
            found = c
            break
        check(found is not None, f"no prompt fits slot {slot} ({lo}-{hi} tokens, margin >= {min_margin}); "
                                 f"rejected for margin: {rejected}")
        cases.append(found)
        used_lengths.add(len(found["input_ids"]))
        used_prompts.add(found["prompt"])
    return cases


def cases_for(model, prompts_ids, min_margin):
    cases = [case(model, p, ids) for p, ids in prompts_ids]
    worst = min(c["greedy_min_margin"] for c in cases)
    return cases, worst >= min_margin


@torch.no_grad()
def health(model, ids, label):
    """Logits finite, spread out, not saturated: a wrong op must visibly move them."""
    logits = logits_of(model, ids)
    check(torch.isfinite(logits).all().item(), f"{label}: non-finite logits")
    std = logits.std(dim=-1)
    pmax = torch.softmax(logits, dim=-1).max(dim=-1).values
    check(0.3 < std.median().item() < 12.0, f"{label}: logit std {std.median().item():.3f} out of range")
    check(logits.abs().max().item() < 80.0, f"{label}: logits too large ({logits.abs().max().item():.1f})")
    check(pmax.mean().item() < 0.9, f"{label}: saturated softmax (mean top prob {pmax.mean().item():.3f})")
    return {"logit_std": round(std.median().item(), 3), "mean_top_prob": round(pmax.mean().item(), 3)}


@torch.no_grad()
def max_logprob_diff(a, b, ids):
    la = torch.log_softmax(logits_of(a, ids), dim=-1)
    lb = torch.log_softmax(logits_of(b, ids), dim=-1)
    return (la - lb).abs().max().item()


def reference_json(name, model_type, weights_dtype, style, sharded, cases):
    return {"name": name, "model_type": model_type, "weights_dtype": weights_dtype, "config_style": style,
            "sharded": sharded, "max_new_tokens": MAX_NEW_TOKENS, "cases": cases}
