"""Training the small tokenizers (fixtures and the demo model) with the `tokenizers` library."""
import json
import os

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

EOT = "<|endoftext|>"

# Simple templates, in the shapes real checkpoints use: the byte-level one in ChatML style, the Llama-style one
# in Llama 2's [INST] style (with the BOS token written by the template, as Llama 2's own template does).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
INST_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'system' %}{{ '<<SYS>>\\n' + message['content'] + '\\n<</SYS>>\\n\\n' }}"
    "{% else %}{{ ' ' + message['content'] + ' ' + eos_token }}{% endif %}"
    "{% endfor %}"
)


def byte_level_bpe(lines, vocab_size, extra_special=(), bos_post_processor=False):
    """GPT-2 style: ByteLevel pre-tokenizer/decoder, merges over the 256 byte symbols, <|endoftext|> special."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = [EOT, *extra_special]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(lines, trainer)
    if bos_post_processor:
        eot_id = tok.token_to_id(EOT)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{EOT} $A", pair=f"{EOT} $A {EOT} $B", special_tokens=[(EOT, eot_id)]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def llama_style_bpe(lines, vocab_size, limit_alphabet=90):
    """Llama 2 style: Prepend+Replace normalizer, no pre-tokenizer, BPE with byte_fallback over <0xNN> tokens,
    ids 0,1,2 = <unk>,<s>,</s>, then the 256 byte tokens, then characters and merges; a post-processor adds <s>.

    BpeTrainer knows nothing of byte tokens, so it is trained on words split at '▁' (so that no merge crosses a
    word start, as in SentencePiece) and its vocabulary is then renumbered behind the byte tokens.
    """
    specials = ["<unk>", "<s>", "</s>"]
    trainer_tok = Tokenizer(models.BPE(unk_token="<unk>"))
    trainer_tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    # The trainer's own limit_alphabet breaks frequency ties in hash order (not reproducible): choose the
    # alphabet here, by (frequency, code point), and let the trainer keep exactly that.
    counts = {}
    for line in lines:
        for ch in "▁" + line.replace(" ", "▁"):
            counts[ch] = counts.get(ch, 0) + 1
    alphabet = [ch for ch, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit_alphabet]]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 256,
        min_frequency=2,
        special_tokens=specials,
        initial_alphabet=alphabet,
        limit_alphabet=len(alphabet),
        show_progress=False,
    )
    trainer_tok.train_from_iterator(lines, trainer)
    trained = json.loads(trainer_tok.to_str())["model"]
    by_id = sorted(trained["vocab"].items(), key=lambda kv: kv[1])
    vocab = {}
    for name in specials:
        vocab[name] = len(vocab)
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for name, _ in by_id:
        if name not in vocab:
            vocab[name] = len(vocab)
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in trained["merges"]]

    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    return tok


def tokenizer_config(kind, model_max_length):
    """tokenizer_config.json contents. PreTrainedTokenizerFast loads tokenizer.json as it is (no rebuilding)."""
    if kind == "byte_level":
        return {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "add_bos_token": False,
            "add_eos_token": False,
            "bos_token": EOT,
            "eos_token": EOT,
            "unk_token": EOT,
            "pad_token": None,
            "clean_up_tokenization_spaces": False,
            "model_max_length": model_max_length,
            "chat_template": CHATML_TEMPLATE,
        }
    if kind == "llama_style":
        return {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "add_bos_token": True,
            "add_eos_token": False,
            "bos_token": "<s>",
            "eos_token": "</s>",
            "unk_token": "<unk>",
            "pad_token": None,
            "clean_up_tokenization_spaces": False,
            "model_max_length": model_max_length,
            "chat_template": INST_TEMPLATE,
        }
    raise ValueError(kind)


def save_tokenizer(tok, kind, folder, model_max_length, config_overrides=None):
    os.makedirs(folder, exist_ok=True)
    tok.save(os.path.join(folder, "tokenizer.json"))
    cfg = tokenizer_config(kind, model_max_length)
    cfg.update(config_overrides or {})
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)
        f.write("\n")


def special_ids(tok, kind):
    if kind == "byte_level":
        eot = tok.token_to_id(EOT)
        return {"bos_token_id": eot, "eos_token_id": eot, "pad_token_id": None}
    return {"bos_token_id": tok.token_to_id("<s>"), "eos_token_id": tok.token_to_id("</s>"),
            "pad_token_id": tok.token_to_id("<unk>")}
