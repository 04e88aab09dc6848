#!/usr/bin/env python3
"""transformers' reference for token alternatives (LoRAX top_n_tokens, OpenAI logprobs/top_logprobs): for every
fixture model of tests/fixtures/models, along each case's greedy continuation of reference.json, the TOP most likely
next tokens at every step and their log-probabilities, log_softmax of the model's logits in float64 with eager
attention (the same computation as reference.json's greedy ids). Written beside each reference.json as
reference-top-tokens.json:

  {"name", "top": TOP, "cases": [{"input_ids", "greedy_ids",
    "steps": [{"ids": [TOP ids, most likely first], "logprobs": [...], "gap": smallest logprob gap between
               neighbours among the first TOP+1}]}]}

    python scripts/make-top-token-references.py [--fixtures tests/fixtures] [--top 5]

Needs torch and transformers 5.x (the GPU machine has them); computes on the CPU.
"""
import json
import os
import pathlib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from fixtures_lib import cli  # noqa: E402
from fixtures_lib import models as models_lib  # noqa: E402
from fixtures_lib import reference as ref  # noqa: E402


@torch.no_grad()
def steps_of(model, input_ids, greedy_ids, top):
    seq = list(input_ids)
    steps = []
    for nxt in greedy_ids:
        lp = torch.log_softmax(ref.logits_of(model, seq)[-1], dim=-1)
        vals, ids = torch.topk(lp, top + 1)
        gaps = (vals[:-1] - vals[1:]).tolist()
        ref.check(int(ids[0]) == nxt, "the greedy path of reference.json is not reproduced")
        steps.append({"ids": [int(i) for i in ids[:top]], "logprobs": [float(v) for v in vals[:top]],
                      "gap": min(gaps)})
        seq.append(nxt)
    return steps


def main():
    a = cli.parse_args(__doc__, lambda ap: ap.add_argument("--top", type=int, default=5))
    for folder in sorted((pathlib.Path(a.fixtures) / "models").iterdir()):
        if not (folder / "reference.json").exists():
            continue
        base = json.loads((folder / "reference.json").read_text())
        model = models_lib.load(str(folder))
        cases = [{"input_ids": c["input_ids"], "greedy_ids": c["greedy_ids"],
                  "steps": steps_of(model, c["input_ids"], c["greedy_ids"], a.top)} for c in base["cases"]]
        out = {"name": base["name"], "top": a.top, "cases": cases}
        (folder / "reference-top-tokens.json").write_text(json.dumps(out, indent=1) + "\n")
        worst = min(s["gap"] for c in cases for s in c["steps"])
        print(f"{folder.name:16s} {sum(len(c['steps']) for c in cases)} steps, smallest neighbour gap {worst:.2e}")


if __name__ == "__main__":
    main()
