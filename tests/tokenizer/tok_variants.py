"""Variants of the shared real tokenizers with other component settings (prefix spaces,
Metaspace pre-tokenizer, lstrip/rstrip/single_word/normalized added tokens, other
normalizers, pre-tokenizers and post-processors, unknown-token handling), so the parity
test also covers configurations that the five real files do not use."""
import copy
import json
import pathlib


def _added(id_, content, special=False, normalized=None, lstrip=False, rstrip=False, single_word=False):
    return {"id": id_, "content": content, "single_word": single_word, "lstrip": lstrip, "rstrip": rstrip,
            "normalized": (not special) if normalized is None else normalized, "special": special}


def _bl(add_prefix_space=False, use_regex=False):
    return {"type": "ByteLevel", "add_prefix_space": add_prefix_space, "trim_offsets": True, "use_regex": use_regex}


def _gpt2_variants(gpt2):
    out = {}
    v = copy.deepcopy(gpt2)
    v["pre_tokenizer"]["add_prefix_space"] = True
    # Ids as the library assigns them: a token in the vocab keeps its vocab id, new ones follow the vocab.
    v["added_tokens"] += [_added(50257, "<mask>", special=True, normalized=False, lstrip=True),
                          _added(31373, "hello", single_word=True),
                          _added(50258, "XYZ", normalized=False, rstrip=True),
                          _added(397, "ab", lstrip=True, rstrip=True),
                          _added(50259, "Wörd", single_word=True, special=True)]
    v["post_processor"] = {"type": "RobertaProcessing", "sep": ["<|endoftext|>", 50256], "cls": ["<mask>", 50257],
                           "trim_offsets": True, "add_prefix_space": True}
    out["gpt2-prefix-space-added"] = v

    v = copy.deepcopy(gpt2)
    v["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"},
                                                            {"type": "Strip", "strip_left": True, "strip_right": True}]}
    v["added_tokens"] += [_added(50257, "HeLLo World", normalized=True), _added(50258, "ÅB", special=True, normalized=True)]
    v["post_processor"] = {"type": "Sequence", "processors": [
        _bl(), {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                           {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}],
                "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [50256], "tokens": ["<|endoftext|>"]}}}]}
    out["gpt2-nfkc-lower-template"] = v

    v = copy.deepcopy(gpt2)
    v["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "WhitespaceSplit"}, {"type": "Punctuation", "behavior": "Isolated"},
        {"type": "Digits", "individual_digits": True}, _bl()]}
    out["gpt2-whitespace-punct-digits"] = v

    v = copy.deepcopy(gpt2)
    v["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "StripAccents"}]}
    v["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [{"type": "BertPreTokenizer"}, _bl()]}
    v["post_processor"] = {"type": "BertProcessing", "sep": ["<|endoftext|>", 50256], "cls": ["<|endoftext|>", 50256]}
    out["gpt2-bert-pre-nfd"] = v

    v = copy.deepcopy(gpt2)
    v["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Whitespace"}, {"type": "Digits", "individual_digits": False}, _bl()]}
    out["gpt2-whitespace-digits"] = v

    for behavior in ["Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous"]:
        for invert in (False, True):
            v = copy.deepcopy(gpt2)
            v["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": r"\s+|\p{P}"}, "behavior": behavior, "invert": invert},
                {"type": "Split", "pattern": {"String": "e"}, "behavior": behavior, "invert": False}, _bl()]}
            out[f"gpt2-split-{behavior}-{'inv' if invert else 'fwd'}"] = v
    v = copy.deepcopy(gpt2)
    v["truncation"] = {"direction": "Right", "max_length": 12, "strategy": "LongestFirst", "stride": 0}
    v["padding"] = {"strategy": "BatchLongest", "direction": "Right", "pad_to_multiple_of": 8, "pad_id": 50256,
                    "pad_type_id": 0, "pad_token": "<|endoftext|>"}
    out["gpt2-truncate-right-pad-multiple"] = v
    return out


def _llama2_variants(llama2):
    out = {}
    v = copy.deepcopy(llama2)
    v["truncation"] = {"direction": "Left", "max_length": 9, "strategy": "LongestFirst", "stride": 0}
    v["padding"] = {"strategy": {"Fixed": 16}, "direction": "Left", "pad_to_multiple_of": None, "pad_id": 0,
                    "pad_type_id": 0, "pad_token": "<unk>"}
    out["llama2-truncate-left-pad-fixed"] = v
    for scheme, split in [("first", False), ("first", True), ("always", True), ("never", True)]:
        v = copy.deepcopy(llama2)
        v["normalizer"] = None
        v["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": scheme, "split": split}
        v["decoder"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": scheme, "split": split}
        v["added_tokens"].append(_added(len(v["model"]["vocab"]), "<extra>", special=False, normalized=False))
        out[f"llama2-metaspace-{scheme}-{'split' if split else 'nosplit'}"] = v
    for fuse in (True, False):
        v = copy.deepcopy(llama2)
        v["model"]["byte_fallback"] = False
        v["model"]["fuse_unk"] = fuse
        out[f"llama2-unk-{'fused' if fuse else 'unfused'}"] = v
    v = copy.deepcopy(llama2)
    v["normalizer"]["normalizers"].append({"type": "Replace", "pattern": {"Regex": r"\p{N}+"}, "content": "7"})
    v["decoder"]["decoders"].append({"type": "Replace", "pattern": {"Regex": "7+"}, "content": "#"})
    out["llama2-regex-replace"] = v
    return out


def _trained_variants():
    """Small BPE models trained here with the library's trainer: continuing-subword prefix,
    end-of-word suffix, unknown tokens (a limited alphabet), BPEDecoder and WordPiece decoders."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from tok_corpus import corpus

    lines = corpus(size=600)
    out = {}
    tok = Tokenizer(models.BPE(unk_token="<unk>", continuing_subword_prefix="##", end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.BPEDecoder(suffix="</w>")
    tok.train_from_iterator(lines, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<unk>", "<s>"], limit_alphabet=60, continuing_subword_prefix="##",
        end_of_word_suffix="</w>", show_progress=False))
    out["trained-prefix-suffix-unk"] = json.loads(tok.to_str())
    tok = Tokenizer(models.BPE(unk_token="<unk>", continuing_subword_prefix="##", fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tok.train_from_iterator(lines, trainers.BpeTrainer(
        vocab_size=500, special_tokens=["<unk>"], limit_alphabet=80, continuing_subword_prefix="##",
        show_progress=False))
    out["trained-wordpiece-decoder"] = json.loads(tok.to_str())
    return out


def write_variants(shared, out_dir):
    """Writes each variant's tokenizer.json under out_dir/<name>/ and returns {name: path}."""
    paths = {}
    for name, spec in _trained_variants().items():
        d = pathlib.Path(out_dir) / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
        paths[name] = d / "tokenizer.json"
    base = pathlib.Path(shared) / "tokenizers"
    sources = {"gpt2": _gpt2_variants, "llama2": _llama2_variants}
    for src, make in sources.items():
        f = base / src / "tokenizer.json"
        if not f.exists():
            continue
        for name, spec in make(json.loads(f.read_text(encoding="utf-8"))).items():
            d = pathlib.Path(out_dir) / name
            d.mkdir(parents=True, exist_ok=True)
            (d / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
            paths[name] = d / "tokenizer.json"
    return paths


VARIANT_NAMES = [
    "gpt2-prefix-space-added", "gpt2-nfkc-lower-template", "gpt2-whitespace-punct-digits", "gpt2-bert-pre-nfd",
    "gpt2-whitespace-digits", "gpt2-truncate-right-pad-multiple", "llama2-truncate-left-pad-fixed",
    *[f"gpt2-split-{b}-{d}" for b in ["Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous"]
      for d in ("fwd", "inv")],
    "llama2-metaspace-first-nosplit", "llama2-metaspace-first-split", "llama2-metaspace-always-split",
    "llama2-metaspace-never-split", "llama2-unk-fused", "llama2-unk-unfused", "llama2-regex-replace",
    "trained-prefix-suffix-unk", "trained-wordpiece-decoder",
]
