"""The server on every fixture model (tests/fixtures/models, written by scripts/make-fixtures.py) reproduces
transformers' reference: prompt ids, prefill log-probs within 1e-3 and the 12 greedy tokens, with all prompts
of a model in flight at once. Chat prompts match Python jinja2 + tokenizers rendering of the model's template."""
import json
import pathlib
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import requests

from e2e_reference import reference_chat_ids

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "models"
MODELS = sorted(p.name for p in FIXTURES.glob("*") if (p / "reference.json").exists())


@pytest.mark.skipif(not MODELS, reason="no fixture models")
@pytest.mark.parametrize("name", MODELS)
def test_fixture_model_matches_transformers(start_server, name):
    folder = FIXTURES / name
    ref = json.loads((folder / "reference.json").read_text())
    s = start_server("--max-total-tokens", "120", "--max-input-length", "100", model=folder)

    def run(case):
        body = {"inputs": case["prompt"], "parameters": {
            "max_new_tokens": ref["max_new_tokens"], "ignore_eos_token": True, "decoder_input_details": True}}
        r = requests.post(s.url + "/generate", json=body, timeout=120)
        assert r.status_code == 200, r.text
        return r.json()["details"]

    with ThreadPoolExecutor(len(ref["cases"])) as pool:
        results = list(pool.map(run, ref["cases"]))
    for case, d in zip(ref["cases"], results):
        assert [t["id"] for t in d["prefill"]] == case["input_ids"]
        assert d["prefill"][0]["logprob"] is None
        for got, want in zip(d["prefill"][1:], case["prefill_logprobs"][1:]):
            assert got["logprob"] == pytest.approx(want, abs=1e-3)
        assert [t["id"] for t in d["tokens"]] == case["greedy_ids"], case["prompt"]

    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    if cfg.get("chat_template"):
        messages = [{"role": "user", "content": ref["cases"][0]["prompt"]}]
        client = openai.OpenAI(base_url=s.url + "/v1", api_key="unused")
        r = client.chat.completions.create(model=str(folder), messages=messages, max_tokens=3, temperature=0)
        assert r.usage.prompt_tokens == len(reference_chat_ids(folder, messages))
    assert s.stop() == 0
