"""Token alternatives: LoRAX `top_n_tokens` (details.top_tokens, stream events' top_tokens) and
`return_k_alternatives` (each token's alternative_tokens), OpenAI `logprobs`/`top_logprobs` on completions and chat,
streamed too. On every fixture model the greedy path's alternatives are transformers' own: the TOP likeliest ids of
log_softmax(logits) in float64 (reference-top-tokens.json, scripts/make-top-token-references.py), log-probs within
1e-3 on the CPU backend. Bad values are 422s, through the real clients too."""
import json
import math
import pathlib

import lorax
import openai
import pytest
import requests

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "models"
MODELS = sorted(p.name for p in FIXTURES.glob("*") if (p / "reference-top-tokens.json").exists())
TOL = 1e-3


def check_step(alternatives, step, chosen):
    """One generated position: the alternatives against transformers' top ids and log-probs."""
    ids = [a["id"] for a in alternatives]
    lps = [a["logprob"] for a in alternatives]
    assert len(ids) == len(step["ids"])
    # Neighbours closer than the tolerance may trade places; elsewhere the order is transformers'.
    if step["gap"] > 2 * TOL:
        assert ids == step["ids"]
    else:
        assert sorted(lps, reverse=True) == pytest.approx(step["logprobs"], abs=TOL)
    assert lps == pytest.approx(step["logprobs"], abs=TOL)
    assert ids[0] == chosen["id"] and lps[0] == chosen["logprob"], "greedy: the chosen token is the likeliest"


@pytest.mark.skipif(not MODELS, reason="no top-token references")
@pytest.mark.parametrize("name", MODELS)
def test_alternatives_match_transformers(start_server, name):
    folder = FIXTURES / name
    ref = json.loads((folder / "reference-top-tokens.json").read_text())
    base = json.loads((folder / "reference.json").read_text())["cases"]
    top = ref["top"]
    s = start_server("--max-total-tokens", "120", "--max-input-length", "100", model=folder)
    for case, base_case in zip(ref["cases"], base):
        assert case["input_ids"] == base_case["input_ids"]
        prompt = base_case["prompt"]
        body = {"inputs": prompt, "parameters": {"max_new_tokens": len(case["greedy_ids"]), "ignore_eos_token": True,
                                                 "details": True, "top_n_tokens": top}}
        r = requests.post(s.url + "/generate", json=body, timeout=120)
        assert r.status_code == 200, r.text
        d = r.json()["details"]
        assert [t["id"] for t in d["tokens"]] == case["greedy_ids"]
        assert len(d["top_tokens"]) == len(d["tokens"])
        for alts, step, tok in zip(d["top_tokens"], case["steps"], d["tokens"]):
            check_step(alts, step, tok)
        # The stream carries the same alternatives, one list per event.
        events = []
        with requests.post(s.url + "/generate_stream", json=body, stream=True, timeout=120) as st:
            for line in st.iter_lines():
                if line.startswith(b"data:"):
                    events.append(json.loads(line[5:]))
        assert len(events) == len(d["top_tokens"])
        for e, alts, step in zip(events, d["top_tokens"], case["steps"]):  # (prefix-cached prompt: fp32 noise)
            check_step(e["top_tokens"], step, e["token"])
            assert [a["text"] for a in e["top_tokens"]] == [a["text"] for a in alts]
        # Completions' logprobs: the same log-probs per token, the alternatives keyed by text.
        r = requests.post(s.url + "/v1/completions", json={"prompt": prompt, "max_tokens": 3, "temperature": 0,
                                                           "logprobs": top}, timeout=120).json()
        lp = r["choices"][0]["logprobs"]
        for got, step in zip(lp["token_logprobs"], case["steps"]):
            assert got == pytest.approx(step["logprobs"][0], abs=TOL)
        for alts, step in zip(lp["top_logprobs"], case["steps"]):
            assert max(alts.values()) == pytest.approx(step["logprobs"][0], abs=TOL)
            assert 1 <= len(alts) <= top  # alternatives of one text share a key
    assert s.stop() == 0


@pytest.fixture(scope="module")
def many(start_server):
    return start_server("--max-best-of", "4", "--kv-cache-tokens", "8192")


def generate(url, inputs="Hello there", **params):
    r = requests.post(url + "/generate", json={"inputs": inputs, "parameters": params}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_lorax_top_n_and_alternatives_are_consistent(many):
    d = generate(many.url, max_new_tokens=6, details=True, top_n_tokens=4, return_k_alternatives=2,
                 do_sample=True, temperature=0.8, top_k=3, seed=11)["details"]
    for tok, alts in zip(d["tokens"], d["top_tokens"]):
        # top_k 3 leaves three tokens to choose from: only those are alternatives, the chosen one among them.
        assert len(alts) == 3
        lps = [a["logprob"] for a in alts]
        assert lps == sorted(lps, reverse=True)
        assert abs(sum(math.exp(x) for x in lps) - 1.0) < 1e-4, "the warped distribution sums to 1"
        assert {"id": tok["id"], "logprob": tok["logprob"]} in [{"id": a["id"], "logprob": a["logprob"]} for a in alts]
        assert [(a["id"], a["logprob"]) for a in tok["alternative_tokens"]] == [(a["id"], a["logprob"]) for a in alts[:2]]
    # The same through lorax-client (its Token model reads alternative_tokens).
    client = lorax.Client(many.url)
    r = client.generate("Hello there", max_new_tokens=4, return_k_alternatives=3, details=True)
    for tok in r.details.tokens:
        assert len(tok.alternative_tokens) == 3 and tok.alternative_tokens[0].id == tok.id


def test_openai_logprobs_through_the_client(many):
    client = openai.OpenAI(base_url=many.url + "/v1", api_key="unused")
    m = client.models.list().data[0].id
    chat = client.chat.completions.create(model=m, messages=[{"role": "user", "content": "hi"}], max_tokens=5,
                                          temperature=0, logprobs=True, top_logprobs=3)
    content = chat.choices[0].logprobs.content
    text = b"".join(bytes(c.bytes) for c in content).decode("utf-8", "replace")
    assert content and text == chat.choices[0].message.content
    for c in content:
        assert len(c.top_logprobs) == 3 and c.top_logprobs[0].token == c.token
        assert c.top_logprobs[0].logprob == c.logprob and bytes(c.bytes).decode("utf-8", "replace") == c.token
    # Streamed: the chunks' entries add up to the same list.
    streamed = []
    for chunk in client.chat.completions.create(model=m, messages=[{"role": "user", "content": "hi"}], max_tokens=5,
                                                temperature=0, logprobs=True, top_logprobs=3, stream=True):
        if chunk.choices and chunk.choices[0].logprobs and chunk.choices[0].logprobs.content:
            streamed += chunk.choices[0].logprobs.content
    assert [(c.token, round(c.logprob, 4)) for c in streamed] == [(c.token, round(c.logprob, 4)) for c in content]
    # No logprobs asked: none given.
    plain = client.chat.completions.create(model=m, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert plain.choices[0].logprobs is None
    comp = client.completions.create(model=m, prompt="Hello there", max_tokens=4, temperature=0, logprobs=2)
    lp = comp.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset)
    assert lp.text_offset[0] == 0 and all(a <= b for a, b in zip(lp.text_offset, lp.text_offset[1:]))


@pytest.mark.parametrize("route,body,words", [
    ("/generate", {"inputs": "x", "parameters": {"top_n_tokens": 21}}, "top_n_tokens"),
    ("/generate", {"inputs": "x", "parameters": {"top_n_tokens": -1}}, "top_n_tokens"),
    ("/generate", {"inputs": "x", "parameters": {"return_k_alternatives": 99}}, "return_k_alternatives"),
    ("/v1/completions", {"prompt": "x", "logprobs": 6}, "logprobs"),
    ("/v1/completions", {"prompt": "x", "logprobs": 1, "echo": True}, "echo"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "top_logprobs": 3}, "logprobs"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "logprobs": True, "top_logprobs": 21},
     "top_logprobs"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "logprobs": "yes"}, "logprobs"),
])
def test_bad_alternative_requests_are_422(many, route, body, words):
    r = requests.post(many.url + route, json=body, timeout=30)
    assert r.status_code == 422, r.text
    assert words in r.json()["error"]


def test_bad_logprobs_through_the_openai_client(many):
    client = openai.OpenAI(base_url=many.url + "/v1", api_key="unused")
    m = client.models.list().data[0].id
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model=m, messages=[{"role": "user", "content": "x"}], logprobs=True,
                                       top_logprobs=25)
    with pytest.raises(openai.UnprocessableEntityError):
        client.completions.create(model=m, prompt="x", logprobs=9)
