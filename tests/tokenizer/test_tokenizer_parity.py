"""Parity of the C++ tokenizer (lorax-engine tokenize --input-jsonl) with the
Python `tokenizers` library, the independent reference, on a seeded corpus:
encode with/without special tokens, decode with/without skipping special tokens,
and the incremental detokenizer (its concatenated output must equal decode)."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from tok_corpus import corpus, random_id_lists  # noqa: E402
from tok_paths import label, tokenizer_files  # noqa: E402
from tok_variants import VARIANT_NAMES, write_variants  # noqa: E402

tokenizers = pytest.importorskip("tokenizers")

REPO = pathlib.Path(__file__).resolve().parents[2]
SHARED = pathlib.Path(os.environ.get("LORAX_SHARED_DIR", REPO.parent / "shared"))
FILES = tokenizer_files(SHARED)
# Real files get the full corpus; the component variants (tok_variants.py) a smaller one.
PARAMS = [(label(f), f) for f in FILES] + [(f"variant:{n}", n) for n in VARIANT_NAMES]


def _mismatches(cases, key_cpp, key_py, results, reference):
    bad = []
    for i, (res, ref) in enumerate(zip(results, reference)):
        if res.get(key_cpp) != ref[key_py]:
            bad.append(f"case {i} {cases[i]!r}: c++ {res.get(key_cpp)!r} != python {ref[key_py]!r}")
    return bad


@pytest.fixture(scope="session")
def variant_paths(tmp_path_factory):
    return write_variants(SHARED, tmp_path_factory.mktemp("variants"))


@pytest.fixture(scope="module", params=PARAMS, ids=[p[0] for p in PARAMS])
def parity(request, engine_bin, tmp_path_factory, variant_paths):
    name, path = request.param
    is_variant = name.startswith("variant:")
    if is_variant:
        if path not in variant_paths:
            pytest.skip(f"{path}: source tokenizer not present")
        path = variant_paths[path]
    if not path.exists():
        pytest.skip(f"{path} not present")
    ref_tok = tokenizers.Tokenizer.from_file(str(path))
    spec = json.loads(path.read_text(encoding="utf-8"))
    added = [a for a in spec.get("added_tokens", [])]
    specials = [a["content"] for a in added][:200]
    texts = corpus(specials, size=400 if is_variant else 1100)
    vocab_size = ref_tok.get_vocab_size(with_added_tokens=True)
    byte_ids = [i for i in (ref_tok.token_to_id(f"<0x{b:02X}>") for b in range(256)) if i is not None]
    id_lists = random_id_lists(vocab_size, [a["id"] for a in added][:50] + byte_ids, count=100 if is_variant else 300)

    reference = []
    cases = []
    for t in texts:
        ids = ref_tok.encode(t, add_special_tokens=True).ids
        prompt_text = ref_tok.decode(ids[: len(ids) // 2], skip_special_tokens=False)
        full_text = ref_tok.decode(ids, skip_special_tokens=False)
        reference.append({
            # Defined when the prompt's text is a stable prefix of the whole text.
            "after_prompt": full_text[len(prompt_text):]
            if full_text.startswith(prompt_text) and not prompt_text.endswith("\ufffd") else None,
            "ids": ids,
            "ids_plain": ref_tok.encode(t, add_special_tokens=False).ids,
            "text": ref_tok.decode(ids, skip_special_tokens=False),
            "text_skip": ref_tok.decode(ids, skip_special_tokens=True),
        })
        cases.append({"text": t, "ids": ids, "prompt_len": len(ids) // 2})
    for ids in id_lists:
        reference.append({"text": ref_tok.decode(ids, skip_special_tokens=False),
                          "text_skip": ref_tok.decode(ids, skip_special_tokens=True)})
        cases.append({"ids": ids})

    work = tmp_path_factory.mktemp("tok")
    inp = work / "cases.jsonl"
    inp.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    proc = subprocess.run([str(engine_bin), "tokenize", "--tokenizer", str(path), "--input-jsonl", str(inp)],
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    results = [json.loads(line) for line in proc.stdout.decode("utf-8").split("\n") if line]
    assert len(results) == len(cases)
    return {"variant": is_variant, "cases": cases, "texts": texts, "reference": reference, "results": results}


def test_corpus_is_large_enough(parity):
    assert len(parity["texts"]) >= (400 if parity["variant"] else 1000)


@pytest.mark.parametrize("key", ["ids", "ids_plain"])
def test_encode_matches_python(parity, key):
    n = len(parity["texts"])
    bad = _mismatches(parity["cases"][:n], key, key, parity["results"][:n], parity["reference"][:n])
    assert not bad, f"{len(bad)} mismatches, first: " + "\n".join(bad[:5])


@pytest.mark.parametrize("key", ["text", "text_skip"])
def test_decode_matches_python(parity, key):
    bad = _mismatches(parity["cases"], key, key, parity["results"], parity["reference"])
    assert not bad, f"{len(bad)} mismatches, first: " + "\n".join(bad[:5])


@pytest.mark.parametrize("stream_key,key", [("stream", "text"), ("stream_skip", "text_skip")])
def test_incremental_detokenizer_equals_decode(parity, stream_key, key):
    bad = []
    for i, res in enumerate(parity["results"]):
        if res[stream_key] != res[key]:
            bad.append(f"case {i} {parity['cases'][i]!r}: stream {res[stream_key]!r} != decode {res[key]!r}")
    assert not bad, f"{len(bad)} mismatches, first: " + "\n".join(bad[:5])


def test_incremental_detokenizer_after_prompt(parity):
    """Streaming the second half of each encoding with the first half as prompt gives
    exactly the text the Python library's decode adds after the prompt."""
    bad, checked = [], 0
    for i, ref in enumerate(parity["reference"][: len(parity["texts"])]):
        if ref["after_prompt"] is None:
            continue
        checked += 1
        got = parity["results"][i]["stream_after_prompt"]
        if got != ref["after_prompt"]:
            bad.append(f"case {i} {parity['cases'][i]!r}: stream {got!r} != python {ref['after_prompt']!r}")
    assert checked > len(parity["texts"]) // 2
    assert not bad, f"{len(bad)} mismatches, first: " + "\n".join(bad[:5])
