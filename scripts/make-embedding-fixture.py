#!/usr/bin/env python3
"""A tiny random Qwen2 sentence-embedding model in the layout sentence-transformers models built on Qwen2 ship
(stella_en_1.5B_v5: modules.json with Transformer -> Pooling(mean) -> Dense -> Normalize, the Dense in 2_Dense/),
one PEFT LoRA adapter of its decoder, and sentence-transformers' own embeddings of a few texts:

  tests/fixtures/models/qwen2-embed/                 the model, as SentenceTransformer.save writes it
  tests/fixtures/adapters/qwen2-embed/attn-r4/       the adapter (q_proj, v_proj)
  tests/fixtures/models/qwen2-embed/reference-embeddings.json
    {"texts": [...], "input_ids": [[...]], "float64": {"normalized": [[...]], "unnormalized": [[...]]},
     "adapter": {"normalized": [[...]]}, "bfloat16": {"normalized": [[...]]}, "bf16_drift": {...}}

"float64" is the whole pipeline in float64 on the CPU; "unnormalized" stops before Normalize (the test drops that
module to check the path without it); "bfloat16" is sentence-transformers itself in bfloat16 on the CPU, and
bf16_drift its distance from float64 (the yardstick for the engine's bf16 run).

    python scripts/make-embedding-fixture.py [--fixtures tests/fixtures]

Needs torch, transformers 5.x, peft and sentence-transformers (the GPU machine has them); computes on the CPU.
"""
import json
import os
import pathlib
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from sentence_transformers import SentenceTransformer, models  # noqa: E402
from transformers import AutoTokenizer, Qwen2Config, Qwen2Model  # noqa: E402

from fixtures_lib import cli  # noqa: E402
from fixtures_lib import adapters as adapters_lib  # noqa: E402

TEXTS = ["The cat sat on the mat.", "Embeddings map text to vectors", "hello",
         "Können Sie mir helfen? Ça va très bien, merci.", "A somewhat longer sentence that has quite a few more "
         "tokens than the others, so that batches hold sequences of different lengths."]
OUT_DIM = 32


def encode(st, texts):
    return st.encode(texts, batch_size=len(texts), convert_to_tensor=True).to(torch.float64).tolist()


def main():
    a = cli.parse_args(__doc__)
    fixtures = pathlib.Path(a.fixtures)
    tok_src = fixtures / "models" / "qwen2-tied"
    out = fixtures / "models" / "qwen2-embed"
    torch.manual_seed(7)
    cfg = Qwen2Config(vocab_size=494, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      rms_norm_eps=1e-6, tie_word_embeddings=False, use_sliding_window=False)
    base = Qwen2Model(cfg)
    with torch.no_grad():  # larger than the default init so the layers visibly matter
        for p in base.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.08)
    with tempfile.TemporaryDirectory() as tmp:
        base.save_pretrained(tmp, safe_serialization=True)
        shutil.copy(tok_src / "tokenizer.json", tmp)
        # No chat template: sentence-transformers 6 would wrap every text in it (its "message" modality), while
        # embedding models built on Qwen2 embed the plain text.
        tok_cfg = json.loads((tok_src / "tokenizer_config.json").read_text())
        tok_cfg.pop("chat_template", None)
        (pathlib.Path(tmp) / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2) + "\n")
        word = models.Transformer(tmp, max_seq_length=100)
        word.tokenizer.pad_token = word.tokenizer.eos_token  # batches pad (on the right; causal, so harmless)
        pool = models.Pooling(64, pooling_mode="mean")
        dense = models.Dense(64, OUT_DIM, bias=True, activation_function=torch.nn.Identity())
        st = SentenceTransformer(modules=[word, pool, dense, models.Normalize()], device="cpu")
        if out.exists():
            shutil.rmtree(out)
        st.save(str(out))
    for junk in ("README.md", "chat_template.jinja"):
        (out / junk).unlink(missing_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    ids = [tokenizer(t)["input_ids"] for t in TEXTS]
    st = SentenceTransformer(str(out), device="cpu").to(torch.float64)
    seen = st.preprocess([TEXTS[0]]) if hasattr(st, "preprocess") else st.tokenize([TEXTS[0]])
    assert seen["input_ids"][0].tolist() == ids[0], "sentence-transformers must embed the plain text"
    ref = {"texts": TEXTS, "input_ids": ids, "float64": {"normalized": encode(st, TEXTS)}}
    unnorm = SentenceTransformer(modules=[st[0], st[1], st[2]], device="cpu").to(torch.float64)
    ref["float64"]["unnormalized"] = encode(unnorm, TEXTS)

    # A LoRA adapter of the decoder (what the engine applies for embeddings as for generation).
    adir = fixtures / "adapters" / "qwen2-embed" / "attn-r4"
    pm = get_peft_model(Qwen2Model.from_pretrained(str(out)), LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                                                         target_modules=["q_proj", "v_proj"]))
    adapters_lib.randomize(pm, torch.Generator().manual_seed(11), 0.5)
    if adir.exists():
        shutil.rmtree(adir)
    pm.save_pretrained(str(adir), safe_serialization=True)
    adapters_lib.fix_adapter_config(str(adir), "qwen2-embed")
    with_adapter = SentenceTransformer(str(out), device="cpu")
    with_adapter[0].auto_model = PeftModel.from_pretrained(with_adapter[0].auto_model, str(adir))
    ref["adapter"] = {"name": "attn-r4", "normalized": encode(with_adapter.to(torch.float64), TEXTS)}

    bf = SentenceTransformer(str(out), device="cpu").to(torch.bfloat16)
    ref["bfloat16"] = {"normalized": encode(bf, TEXTS)}
    exact = torch.tensor(ref["float64"]["normalized"])
    got = torch.tensor(ref["bfloat16"]["normalized"])
    ref["bf16_drift"] = {"max_abs": (exact - got).abs().max().item(),
                         "min_cosine": torch.nn.functional.cosine_similarity(exact, got).min().item()}
    (out / "reference-embeddings.json").write_text(json.dumps(ref, indent=1) + "\n")
    moved = (torch.tensor(ref["adapter"]["normalized"]) - exact).abs().max().item()
    print(f"qwen2-embed: {len(TEXTS)} texts, dim {OUT_DIM}; adapter moves embeddings by up to {moved:.3f}; "
          f"sentence-transformers bf16 drift {ref['bf16_drift']}")
    print(sorted(p.name for p in out.rglob("*")))


if __name__ == "__main__":
    main()
