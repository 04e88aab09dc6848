"""The tokenize/detokenize CLI contract, and clear one-line errors (exit code 1) on
malformed tokenizer files. The Python `tokenizers` library is the reference: it
must reject the same broken files."""
import copy
import json
import os
import pathlib
import subprocess

import pytest

tokenizers = pytest.importorskip("tokenizers")

REPO = pathlib.Path(__file__).resolve().parents[2]
SHARED = pathlib.Path(os.environ.get("LORAX_SHARED_DIR", REPO.parent / "shared"))
GPT2 = SHARED / "tokenizers" / "gpt2"
LLAMA2 = SHARED / "tokenizers" / "llama2"

TINY = {
    "version": "1.0",
    "truncation": None,
    "padding": None,
    "added_tokens": [{"id": 3, "content": "<s>", "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": True}],
    "normalizer": None,
    "pre_tokenizer": {"type": "WhitespaceSplit"},
    "post_processor": None,
    "decoder": None,
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
              "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]},
}


needs_shared = pytest.mark.skipif(not (GPT2 / "tokenizer.json").exists() or not (LLAMA2 / "tokenizer.json").exists(),
                                  reason="shared tokenizers not present")


def run(engine_bin, *args):
    return subprocess.run([str(engine_bin), *map(str, args)], capture_output=True, text=True, timeout=120)


@needs_shared
@pytest.mark.parametrize("special", [True, False])
@pytest.mark.parametrize("name", ["gpt2", "llama2"])
def test_tokenize_json_matches_python(engine_bin, name, special):
    path = SHARED / "tokenizers" / name
    text = "Hello <s> world<|endoftext|>, ça va? 123"
    args = ["tokenize", "--tokenizer", path, "--text", text, "--json"] + ([] if special else ["--no-special-tokens"])
    proc = run(engine_bin, *args)
    assert proc.returncode == 0, proc.stderr
    want = tokenizers.Tokenizer.from_file(str(path / "tokenizer.json")).encode(text, add_special_tokens=special).ids
    assert json.loads(proc.stdout) == {"ids": want}


@needs_shared
@pytest.mark.parametrize("skip", [False, True])
def test_detokenize_matches_python(engine_bin, skip):
    ref = tokenizers.Tokenizer.from_file(str(LLAMA2 / "tokenizer.json"))
    ids = ref.encode("Hello world, ça va?").ids
    args = ["detokenize", "--tokenizer", LLAMA2 / "tokenizer.json", "--ids", ",".join(map(str, ids))]
    proc = run(engine_bin, *(args + (["--skip-special-tokens"] if skip else [])))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ref.decode(ids, skip_special_tokens=skip) + "\n"


def test_tiny_tokenizer_loads_in_both(engine_bin, tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(TINY))
    want = tokenizers.Tokenizer.from_file(str(path)).encode("ab a<s>b").ids
    proc = run(engine_bin, "tokenize", "--tokenizer", tmp_path, "--text", "ab a<s>b", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ids"] == want


def _broken_cases():
    def with_(fn):
        spec = copy.deepcopy(TINY)
        fn(spec)
        return json.dumps(spec)

    full = (GPT2 / "tokenizer.json").read_text(encoding="utf-8") if GPT2.exists() else json.dumps(TINY)
    return {
        "bad_json": ("{\"model\": {\"type\": \"BPE\",, }", "invalid JSON"),
        "truncated": (full[: len(full) // 2], "invalid JSON"),
        "unknown_pre_tokenizer": (with_(lambda s: s.update(pre_tokenizer={"type": "NoSuchThing"})), "NoSuchThing"),
        "unknown_normalizer": (with_(lambda s: s.update(normalizer={"type": "NoSuchNorm"})), "NoSuchNorm"),
        "unknown_decoder": (with_(lambda s: s.update(decoder={"type": "NoSuchDecoder"})), "NoSuchDecoder"),
        "unknown_model": (with_(lambda s: s["model"].update(type="NoSuchModel")), "NoSuchModel"),
        "merge_unknown_token": (with_(lambda s: s["model"].update(merges=["a zz"])), "zz"),
    }


@pytest.mark.parametrize("case", list(_broken_cases()))
def test_malformed_tokenizer_is_a_clear_error(engine_bin, tmp_path, case):
    text, needle = _broken_cases()[case]
    path = tmp_path / "tokenizer.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(Exception):  # the reference library rejects it too
        tokenizers.Tokenizer.from_file(str(path))
    proc = run(engine_bin, "tokenize", "--tokenizer", path, "--text", "ab", "--json")
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(path) in lines[0] and needle in lines[0], lines[0]


def test_missing_file_and_bad_ids(engine_bin, tmp_path):
    proc = run(engine_bin, "tokenize", "--tokenizer", tmp_path / "nope.json", "--text", "x", "--json")
    assert proc.returncode == 1 and "nope.json" in proc.stderr
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(TINY))
    proc = run(engine_bin, "detokenize", "--tokenizer", path, "--ids", "0,99")
    assert proc.returncode == 1 and "out of range" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
