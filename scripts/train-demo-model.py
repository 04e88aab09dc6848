#!/usr/bin/env python3
"""Train the demo model of Lorax++: a tiny Llama-architecture model with its own byte-level BPE tokenizer, on the
text files found under one or more folders (e.g. a copy of Debian's /usr/share/common-licenses).

    python scripts/train-demo-model.py --corpus /path/to/common-licenses --out models/demo [--minutes 4]

Writes a normal transformers checkpoint (config.json, model.safetensors, generation_config.json, tokenizer.json,
tokenizer_config.json) and TRAINING.md into --out. Trains on the GPU when there is one (bf16 autocast), else on
the CPU (for a quick check: --minutes 0.2). Needs torch, transformers 5.x, tokenizers, safetensors.
"""
import argparse
import hashlib
import math
import os
import platform
import shlex
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig  # noqa: E402

from fixtures_lib import toks  # noqa: E402

MAX_BYTES = 30 * 1024 * 1024


def read_corpus(dirs):
    """Every regular text file under the folders, once (symlinks and duplicate contents are skipped)."""
    docs, seen_paths, seen_hashes, names = [], set(), set(), []
    for d in dirs:
        if not os.path.isdir(d):
            sys.exit(f"error: corpus folder {d!r} does not exist")
        entries = []
        for root, subdirs, files in os.walk(d):
            subdirs.sort()
            entries += [os.path.join(root, name) for name in files]
        # Real files before symlinks, so that a file is listed under its own name (GPL-3, not GPL).
        for full in sorted(entries, key=lambda p: (os.path.islink(p), p)):
            name = os.path.relpath(full, d)
            path = os.path.realpath(full)
            if path in seen_paths or not os.path.isfile(path):
                continue
            seen_paths.add(path)
            with open(path, "rb") as f:
                data = f.read()
            digest = hashlib.sha256(data).hexdigest()
            if digest in seen_hashes or b"\0" in data:
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                continue
            seen_hashes.add(digest)
            docs.append(text)
            names.append(name)
    if not docs:
        sys.exit(f"error: no text files under {', '.join(dirs)}")
    return docs, names


def lr_at(progress, step, base_lr, warmup_steps, min_ratio=0.1):
    """Linear warmup over the first steps, then cosine decay to min_ratio over the time budget."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    p = min(max(progress, 0.0), 1.0)
    return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


def build_model(args, vocab_size, eot_id):
    cfg = LlamaConfig(
        vocab_size=vocab_size, hidden_size=args.hidden, intermediate_size=args.intermediate,
        num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
        max_position_embeddings=args.max_positions, rms_norm_eps=1e-5, hidden_act="silu",
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, tie_word_embeddings=True,
        bos_token_id=eot_id, eos_token_id=eot_id, pad_token_id=eot_id, initializer_range=0.02)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")
    model.generation_config.bos_token_id = eot_id
    model.generation_config.eos_token_id = eot_id
    model.generation_config.pad_token_id = eot_id
    return model


def optimizer_for(model, lr, device):
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8, fused=(device.type == "cuda"))


def train(model, data, args, device):
    opt = optimizer_for(model, args.lr, device)
    gen = torch.Generator(device="cpu").manual_seed(args.seed)
    budget = args.minutes * 60.0
    n = data.numel() - args.seq - 1
    if n <= 0:
        sys.exit(f"error: corpus has {data.numel()} tokens, fewer than one window of {args.seq + 1}")
    data = data.to(device)
    offsets = torch.arange(args.seq + 1, device=device)
    model.train()
    step, ema, last, tokens = 0, None, float("nan"), 0
    t0 = time.time()
    last_print = t0
    while True:
        elapsed = time.time() - t0
        if elapsed >= budget and step > 0:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(elapsed / budget if budget > 0 else 1.0, step, args.lr, args.warmup_steps)
        starts = torch.randint(0, n, (args.batch, 1), generator=gen).to(device, non_blocking=True)
        windows = data[starts + offsets]
        x, y = windows[:, :-1], windows[:, 1:]
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            logits = model(input_ids=x, use_cache=False).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens += x.numel()
        now = time.time()
        if now - last_print >= args.print_every or step == 1:
            last = loss.item()
            ema = last if ema is None else 0.8 * ema + 0.2 * last
            print(f"step {step:6d}  {now - t0:7.1f}s  loss {last:.4f}  lr {opt.param_groups[0]['lr']:.2e}  "
                  f"tok/s {tokens / max(now - t0, 1e-9):,.0f}", flush=True)
            last_print = now
    last = loss.item()
    model.eval()
    return {"steps": step, "tokens_seen": tokens, "seconds": round(time.time() - t0, 1), "final_loss": last}


@torch.no_grad()
def eval_loss(model, data, args, device, batches=8):
    gen = torch.Generator(device="cpu").manual_seed(args.seed + 1)
    n = data.numel() - args.seq - 1
    losses = []
    for _ in range(batches):
        starts = torch.randint(0, n, (args.batch,), generator=gen)
        w = torch.stack([data[s:s + args.seq + 1] for s in starts.tolist()]).to(device)
        logits = model(input_ids=w[:, :-1], use_cache=False).logits.float()
        losses.append(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                        w[:, 1:].reshape(-1)).item())
    return sum(losses) / len(losses)


def folder_bytes(path):
    return sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path)
               if os.path.isfile(os.path.join(path, n)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", nargs="+", required=True, help="folder(s) of text files")
    ap.add_argument("--out", default="models/demo")
    ap.add_argument("--minutes", type=float, default=4.0, help="training time budget")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--intermediate", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--max-positions", type=int, default=512)
    ap.add_argument("--seq", type=int, default=256, help="training window length")
    ap.add_argument("--batch", type=int, default=0, help="windows per step (default: 64 on GPU, 4 on CPU)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup-steps", type=int, default=100)
    ap.add_argument("--save-dtype", choices=["bfloat16", "float32"], default="bfloat16")
    ap.add_argument("--print-every", type=float, default=10.0, help="seconds between loss lines")
    ap.add_argument("--prompt", default="This License")
    ap.add_argument("--device", default="auto", help="auto, cuda or cpu")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (default: 1 on CPU runs)")
    args = ap.parse_args()

    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads or 1)
        args.warmup_steps = min(args.warmup_steps, 5)
    elif args.threads:
        torch.set_num_threads(args.threads)
    if not args.batch:
        args.batch = 64 if device.type == "cuda" else 4
    torch.manual_seed(args.seed)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    command = "python scripts/train-demo-model.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])

    docs, names = read_corpus(args.corpus)
    print(f"corpus: {len(docs)} files, {sum(len(d) for d in docs):,} characters", flush=True)
    tok = toks.byte_level_bpe(docs, vocab_size=args.vocab, bos_post_processor=True)
    eot = tok.token_to_id(toks.EOT)
    ids = []
    for d in docs:
        ids.append(eot)
        ids.extend(tok.encode(d, add_special_tokens=False).ids)
    data = torch.tensor(ids, dtype=torch.long)
    print(f"tokenizer: vocab {tok.get_vocab_size()}, corpus {data.numel():,} tokens", flush=True)

    model = build_model(args, tok.get_vocab_size(), eot).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: llama, hidden {args.hidden}, {args.layers} layers, {args.heads} heads ({args.kv_heads} kv), "
          f"intermediate {args.intermediate}, {n_params:,} parameters; device {device}, batch {args.batch}x{args.seq}",
          flush=True)
    stats = train(model, data, args, device)
    stats["eval_loss"] = round(eval_loss(model, data, args, device), 4)
    print(f"done: {stats}", flush=True)

    os.makedirs(args.out, exist_ok=True)
    for name in os.listdir(args.out):
        if name.endswith(".safetensors") or name.endswith(".index.json"):
            os.remove(os.path.join(args.out, name))
    save_dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}[args.save_dtype]
    model.to("cpu").to(save_dtype).save_pretrained(args.out)
    toks.save_tokenizer(tok, "byte_level", args.out, args.max_positions, {"add_bos_token": True})
    size = folder_bytes(args.out)
    if size > MAX_BYTES:
        sys.exit(f"error: {args.out} is {size / 2**20:.1f} MB, over {MAX_BYTES / 2**20:.0f} MB")

    # Show it through transformers' own loading and generate(), from the saved files.
    loaded = AutoModelForCausalLM.from_pretrained(args.out, dtype=torch.float32).to(device).eval()
    hf_tok = AutoTokenizer.from_pretrained(args.out)
    enc = hf_tok(args.prompt, return_tensors="pt").to(device)
    if enc["input_ids"][0].tolist() != tok.encode(args.prompt).ids or enc["input_ids"][0, 0].item() != eot:
        sys.exit("error: AutoTokenizer does not encode the prompt like tokenizer.json with its BOS")
    greedy = loaded.generate(**enc, max_new_tokens=60, do_sample=False)
    torch.manual_seed(args.seed)
    sampled = loaded.generate(**enc, max_new_tokens=60, do_sample=True, temperature=0.8, top_k=40)
    n_in = enc["input_ids"].shape[1]
    greedy_text = hf_tok.decode(greedy[0, n_in:], skip_special_tokens=True)
    sampled_text = hf_tok.decode(sampled[0, n_in:], skip_special_tokens=True)
    print(f"\ngreedy:  {args.prompt}{greedy_text}\n\nsampled: {args.prompt}{sampled_text}\n")

    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    write_training_md(args, command, names, docs, tok, data, n_params, stats, size, device_name,
                      greedy_text, sampled_text)
    print(f"wrote {args.out} ({size / 2**20:.1f} MB)")
    return 0


def write_training_md(args, command, names, docs, tok, data, n_params, stats, size, device_name, greedy, sampled):
    memo = ("(it has mostly memorised its small corpus)." if stats["eval_loss"] < 1.5 else
            "(a short run: it has not learnt much yet).")
    files = sorted(set(os.listdir(args.out)) | {"TRAINING.md"})
    text = f"""# Demo model

A tiny Llama-architecture model trained from scratch by `scripts/train-demo-model.py`, for demos and end-to-end
tests of Lorax++ (it writes readable, license-like English; it knows nothing else).

## How it was made
- Command: `{command}`
- Versions: torch {torch.__version__}, transformers {transformers.__version__}; device: {device_name}
- Corpus: {len(docs)} text files ({sum(len(d) for d in docs):,} characters) from {', '.join(f'`{os.path.basename(os.path.normpath(c))}`' for c in args.corpus)}:
  {', '.join(names)}
- Tokenizer: byte-level BPE trained with the `tokenizers` library on that corpus, vocabulary {tok.get_vocab_size()},
  special token `<|endoftext|>` (id {tok.token_to_id(toks.EOT)}) used as BOS, EOS and document separator;
  its post-processor prepends it (`add_special_tokens=True`). The corpus is {data.numel():,} tokens.
- Model: `LlamaForCausalLM`, hidden {args.hidden}, {args.layers} layers, {args.heads} heads ({args.kv_heads} KV heads,
  head_dim {args.hidden // args.heads}), intermediate {args.intermediate}, RoPE theta 10000, tied embeddings,
  max_position_embeddings {args.max_positions} (trained on {args.seq}-token windows); {n_params:,} parameters,
  saved in {args.save_dtype}.
- Training: AdamW (betas 0.9/0.95, weight decay 0.1 on matrices), peak learning rate {args.lr}, {args.warmup_steps}
  warmup steps then cosine decay to 10% over a {args.minutes}-minute budget, bf16 autocast, gradient clipping 1.0,
  batches of {args.batch} random {args.seq}-token windows, seed {args.seed}.
- Result: {stats['steps']:,} steps, {stats['tokens_seen']:,} tokens seen in {stats['seconds']} s;
  final training loss {stats['final_loss']:.4f}, loss on {8 * args.batch} random windows {stats['eval_loss']:.4f}
  {memo}
- Files ({size / 2**20:.1f} MB): {', '.join(files)}

## Samples (transformers `generate`, 60 new tokens)
Prompt `{args.prompt}`, greedy:

    {args.prompt}{greedy.replace(chr(10), chr(10) + '    ')}

Sampled (temperature 0.8, top_k 40, seed {args.seed}):

    {args.prompt}{sampled.replace(chr(10), chr(10) + '    ')}
"""
    with open(os.path.join(args.out, "TRAINING.md"), "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(main())
