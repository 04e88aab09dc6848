"""`lorax-engine generate` against the transformers references of every fixture
model (written by scripts/make-fixtures.py): `--json` prints the /generate body
whose prefill log-probs must be within 1e-3 and greedy tokens identical; the
same through `--prompts-file` with every prompt in one continuous batch; and bad
models fail with one clear line and a non-zero exit."""
import json
import pathlib
import shutil
import subprocess

import pytest

from conftest import REPO

MODELS = sorted(p.parent for p in (REPO / "tests" / "fixtures" / "models").glob("*/reference.json"))


def run(engine_bin, *args):
    return subprocess.run([str(engine_bin), *map(str, args)], capture_output=True, text=True, timeout=120)


def check(ref_case, body, max_new):
    prefill = body["details"]["prefill"]
    assert [t["id"] for t in prefill] == ref_case["input_ids"]
    assert prefill[0]["logprob"] is None
    for got, want in zip(prefill[1:], ref_case["prefill_logprobs"][1:]):
        assert got["logprob"] == pytest.approx(want, abs=1e-3)
    assert [t["id"] for t in body["details"]["tokens"]] == ref_case["greedy_ids"][:max_new]
    assert body["details"]["finish_reason"] == "length"


@pytest.mark.parametrize("model", MODELS, ids=[m.name for m in MODELS])
def test_generate_json_matches_transformers(engine_bin, model):
    ref = json.loads((model / "reference.json").read_text())
    for case in ref["cases"][:3]:
        out = run(engine_bin, "generate", "--model", model, "--prompt", case["prompt"], "--max-new-tokens",
                  ref["max_new_tokens"], "--ignore-eos-token", "--json", "--threads", 1)
        assert out.returncode == 0, out.stderr
        check(case, json.loads(out.stdout), ref["max_new_tokens"])


@pytest.mark.parametrize("model", MODELS, ids=[m.name for m in MODELS])
def test_prompts_in_one_batch_match_transformers(engine_bin, model, tmp_path):
    ref = json.loads((model / "reference.json").read_text())
    params = {"max_new_tokens": ref["max_new_tokens"], "ignore_eos_token": True, "details": True,
              "decoder_input_details": True}
    lines = [json.dumps({"inputs": c["prompt"], "parameters": params}) for c in ref["cases"]]
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(lines) + "\n")
    # A small prefill budget forces chunked prefills mixed with decodes.
    out = run(engine_bin, "generate", "--model", model, "--prompts-file", prompts, "--max-batch-prefill-tokens", 16,
              "--threads", 1)
    assert out.returncode == 0, out.stderr
    bodies = [json.loads(l) for l in out.stdout.splitlines()]
    assert len(bodies) == len(ref["cases"])
    for case, body in zip(ref["cases"], bodies):
        check(case, body, ref["max_new_tokens"])


def broken_copy(tmp_path, edit):
    dst = tmp_path / "model"
    shutil.copytree(REPO / "tests" / "fixtures" / "models" / "llama", dst)
    edit(dst)
    return dst


def truncate(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[:keep])


BAD_MODELS = {
    "unknown model_type": (lambda d: (d / "config.json").write_text(
        (d / "config.json").read_text().replace('"llama"', '"mamba"', 1)), "unknown model_type 'mamba'"),
    "bad config json": (lambda d: (d / "config.json").write_text("{\"model_type\": "), "invalid JSON"),
    "truncated weights": (lambda d: truncate(d / "model.safetensors", 5000), "truncated"),
    "no weights": (lambda d: (d / "model.safetensors").unlink(), "no model.safetensors"),
    "missing directory": (lambda d: shutil.rmtree(d), "does not exist"),
}


@pytest.mark.parametrize("case", sorted(BAD_MODELS))
def test_bad_model_gives_one_line_error(engine_bin, tmp_path, case):
    edit, message = BAD_MODELS[case]
    model = broken_copy(tmp_path, edit)
    out = run(engine_bin, "generate", "--model", model, "--prompt", "hi")
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]


def test_bad_flags_are_usage_errors(engine_bin):
    out = run(engine_bin, "generate", "--model", REPO / "tests/fixtures/models/llama", "--prompt", "hi", "--top-p", "2")
    assert out.returncode != 0 and "top_p" in out.stderr
    out = run(engine_bin, "generate", "--model", REPO / "tests/fixtures/models/llama", "--bogus")
    assert out.returncode == 2 and "unknown flag --bogus" in out.stderr


def test_seeded_sampling_is_reproducible(engine_bin):
    args = ["generate", "--model", REPO / "models/demo", "--prompt", "This License", "--max-new-tokens", 24,
            "--do-sample", "--temperature", 0.9, "--top-k", 40, "--top-p", 0.95, "--seed", 7, "--json"]
    first, second = run(engine_bin, *args), run(engine_bin, *args)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == json.loads(second.stdout)
    assert json.loads(first.stdout)["details"]["seed"] == 7
