"""Generates component_cases.json, the expected outputs of single tokenizer
components (normalizers, pre-tokenizers, decoders) as computed by the Python
`tokenizers` library (tests/requirements.txt pins the version). The gtest
tokenizer_components_test reads it. Rerun after changing the case lists:
    .venv/bin/python tests/unit/tokenizer/gen_component_cases.py
"""
import json
import pathlib

import tokenizers

INPUTS = [
    "Hello  World!", " leading and trailing  ", "Ça va? Éléphant ÅNGSTRÖM", "ﬁ ﬀ ① ㍿ Ⅻ ｶﾀｶﾅ", "e\u0301 a\u0308",
    "İstanbul ΣΊΣΥΦΟΣ", "abc123def 4567 ٣٤", "tab\there\nnew\r\nline", "I'm can't WE'LL", "a,b.c;d!?e--f",
    "日本語のテキスト 中文", "emoji 👍🏽 👩‍💻", "  \u3000 x\u00a0y ", "", "▁already▁has▁marks", "x" * 5,
    "हिन्दी क्षत्रिय j\u20dd \u0903", "\u1e9e\u00df \u0130 \u03a3\u03c3\u03c2", "\u180e a\u180eb \u200b",
]

SPLIT_PATTERNS = [{"String": " "}, {"String": "ab"}, {"Regex": r"\s+"}, {"Regex": r"\p{N}+"},
                  {"Regex": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"}]
BEHAVIORS = ["Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"]

NORMALIZERS = [
    {"type": "NFC"}, {"type": "NFD"}, {"type": "NFKC"}, {"type": "NFKD"}, {"type": "Lowercase"},
    {"type": "Strip", "strip_left": True, "strip_right": True}, {"type": "Strip", "strip_left": True, "strip_right": False},
    {"type": "Strip", "strip_left": False, "strip_right": True},
    {"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "StripAccents"}]},
    {"type": "Prepend", "prepend": "▁"},
    {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
    {"type": "Replace", "pattern": {"Regex": r"\s+"}, "content": " "},
    {"type": "Replace", "pattern": {"Regex": r"\p{N}"}, "content": "#"},
    {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                         {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
]

PRE_TOKENIZERS = [
    {"type": "Split", "pattern": p, "behavior": b, "invert": inv}
    for p in SPLIT_PATTERNS for b in BEHAVIORS for inv in (False, True)
] + [
    {"type": "ByteLevel", "add_prefix_space": aps, "trim_offsets": True, "use_regex": ur}
    for aps in (False, True) for ur in (False, True)
] + [
    {"type": "Metaspace", "replacement": "▁", "prepend_scheme": ps, "split": sp}
    for ps in ("first", "always", "never") for sp in (True, False)
] + [
    {"type": "Digits", "individual_digits": True}, {"type": "Digits", "individual_digits": False},
    {"type": "Punctuation", "behavior": "Isolated"}, {"type": "Punctuation", "behavior": "Contiguous"},
    {"type": "Punctuation", "behavior": "MergedWithPrevious"},
    {"type": "Whitespace"}, {"type": "WhitespaceSplit"}, {"type": "BertPreTokenizer"},
    {"type": "CharDelimiterSplit", "delimiter": "a"},
    {"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, {"type": "Digits", "individual_digits": True}]},
]

DECODER_INPUTS = [
    ["▁Hello", "▁world", "!"], ["▁▁a", "▁b", "▁"], ["<0xE2>", "<0x82>", "<0xAC>", "x"], ["<0xE2>", "a", "<0x41>", "<0x80>"],
    ["ĠHello", "Ġworld", "Ċ", "âĤ¬", "Ã"], ["  a ", " b  "], ["<0x+A>", "<0xZZ>", "<0x41>"], [], ["", "a"],
]
DECODERS = [
    {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True},
    {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never", "split": True},
    {"type": "ByteFallback"}, {"type": "Fuse"},
    {"type": "Strip", "content": " ", "start": 1, "stop": 0}, {"type": "Strip", "content": " ", "start": 2, "stop": 2},
    {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
    {"type": "BPEDecoder", "suffix": "</w>"},
    {"type": "WordPiece", "prefix": "##", "cleanup": True}, {"type": "WordPiece", "prefix": "##", "cleanup": False},
    {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                                      {"type": "ByteFallback"}, {"type": "Fuse"},
                                      {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
]


def tokenizer_with(**parts):
    spec = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
            "pre_tokenizer": None, "post_processor": None, "decoder": None,
            "model": {"type": "BPE", "vocab": {}, "merges": []}}
    spec.update(parts)
    return tokenizers.Tokenizer.from_str(json.dumps(spec))


def main():
    cases = []
    for n in NORMALIZERS:
        norm = tokenizer_with(normalizer=n).normalizer
        for s in INPUTS:
            cases.append({"kind": "normalizer", "spec": n, "input": s, "expected": norm.normalize_str(s)})
    for p in PRE_TOKENIZERS:
        pre = tokenizer_with(pre_tokenizer=p).pre_tokenizer
        for s in INPUTS:
            cases.append({"kind": "pre_tokenizer", "spec": p, "input": s,
                          "expected": [piece for piece, _ in pre.pre_tokenize_str(s)]})
    for d in DECODERS:
        dec = tokenizer_with(decoder=d).decoder
        for toks in DECODER_INPUTS:
            try:
                expected = dec.decode(toks)
            except BaseException:  # the library panics on some inputs (Strip on ""): nothing to compare
                continue
            cases.append({"kind": "decoder", "spec": d, "input": toks, "expected": expected})
    out = pathlib.Path(__file__).with_name("component_cases.json")
    out.write_text(json.dumps({"tokenizers_version": tokenizers.__version__, "cases": cases}, ensure_ascii=False,
                              indent=0) + "\n", encoding="utf-8")
    print(f"{len(cases)} cases -> {out}")


if __name__ == "__main__":
    main()
