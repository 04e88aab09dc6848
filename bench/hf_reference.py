"""Reference throughput of transformers (+ peft) on the same GPU and shapes as
`lorax-engine bench`: random bf16 weights from a config, greedy decode of
`steps` tokens after a `prompt`-token prompt, batch sizes 1/8/64, with 0 or N
distinct rank-16 LoRA adapters in one batch (peft's mixed-adapter batches).
Decode tokens/s = batch * steps / (time(prompt + steps + 1 tokens) - time(prompt + 1 token))."""
import argparse
import json
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM


def timed_generate(model, ids, n, **kw):
    torch.cuda.synchronize()
    t = time.perf_counter()
    model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                   do_sample=False, pad_token_id=0, **kw)
    torch.cuda.synchronize()
    return time.perf_counter() - t


def decode_tps(model, vocab, batch, prompt, steps, **kw):
    ids = torch.randint(0, vocab, (batch, prompt), device="cuda")
    timed_generate(model, ids, 2, **kw)
    first = timed_generate(model, ids, 1, **kw)
    full = timed_generate(model, ids, steps + 1, **kw)
    return batch * steps / (full - first)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", required=True)
    ap.add_argument("--batch-sizes", default="1,8,64")
    ap.add_argument("--adapters", default="0,16")
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--steps", type=int, default=32)
    args = ap.parse_args()
    cfg = AutoConfig.from_pretrained(args.shape)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16, attn_implementation="sdpa")
    model.eval()
    name = args.shape.rstrip("/").split("/")[-1]
    batches = [int(b) for b in args.batch_sizes.split(",")]
    for n_adapters in [int(a) for a in args.adapters.split(",")]:
        runner, kw_for = model, lambda b: {}
        if n_adapters:
            from peft import LoraConfig, get_peft_model
            lcfg = LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                                   "gate_proj", "up_proj", "down_proj"])
            runner = get_peft_model(model, lcfg, adapter_name="a0")
            for i in range(1, n_adapters):
                runner.add_adapter(f"a{i}", lcfg)
            runner.eval()
            kw_for = lambda b: {"adapter_names": [f"a{i % n_adapters}" for i in range(b)]}
        for b in batches:
            with torch.inference_mode():
                tps = decode_tps(runner, cfg.vocab_size, b, args.prompt, args.steps, **kw_for(b))
            print(json.dumps({"bench": "decode", "impl": "transformers+peft", "model": name, "batch": b,
                              "adapters": n_adapters, "tokens_per_s": tps}), flush=True)


if __name__ == "__main__":
    main()
