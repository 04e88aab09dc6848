"""Several sequences per request: OpenAI `n` and `best_of`, LoRAX `best_of` (details.best_of_sequences), with the
semantics TGI/LoRAX and OpenAI document: sequence i of a seeded request draws from seed + i, so each choice is the
single request with that seed; best_of keeps the sequence(s) of the highest mean token log-prob; every generated
token counts in usage; limits from --max-best-of (/info max_best_of); streams interleave choices by index and end
once. Checked through the real clients (openai, lorax-client) and raw HTTP for the error paths."""
import json

import lorax
import openai
import pytest
import requests

PROMPT = "Hello there"


@pytest.fixture(scope="module")
def srv(start_server):
    return start_server("--max-best-of", "4", "--kv-cache-tokens", "8192")


@pytest.fixture(scope="module")
def client(srv):
    return srv.openai()[0]


@pytest.fixture(scope="module")
def model(srv):
    return srv.openai()[1]


def lorax_details(url, seed, n_tokens=6):
    r = requests.post(url + "/generate", json={"inputs": PROMPT, "parameters": {
        "max_new_tokens": n_tokens, "do_sample": True, "temperature": 1.0, "seed": seed, "details": True}}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def mean_logprob(tokens):
    return sum(t["logprob"] for t in tokens) / len(tokens)


def test_completions_n_are_the_seeded_single_requests(client, model):
    many = client.completions.create(model=model, prompt=PROMPT, max_tokens=6, temperature=1.0, seed=40, n=3)
    assert [c.index for c in many.choices] == [0, 1, 2]
    singles = [client.completions.create(model=model, prompt=PROMPT, max_tokens=6, temperature=1.0, seed=40 + i)
               for i in range(3)]
    assert [c.text for c in many.choices] == [s.choices[0].text for s in singles]
    assert len({c.text for c in many.choices}) > 1, "seeds 40..42 must differ for this test to mean anything"
    assert many.usage.completion_tokens == sum(s.usage.completion_tokens for s in singles)
    assert many.usage.prompt_tokens == singles[0].usage.prompt_tokens


def test_chat_n_streamed_matches_the_body(client, model):
    kw = dict(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=6, temperature=1.0, seed=9, n=2)
    body = client.chat.completions.create(**kw)
    texts, finishes, usage = {}, {}, None
    for chunk in client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}):
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            texts[c.index] = texts.get(c.index, "") + (c.delta.content or "")
            if c.finish_reason:
                finishes[c.index] = c.finish_reason
    assert texts == {c.index: c.message.content for c in body.choices}
    assert finishes == {c.index: c.finish_reason for c in body.choices}
    assert usage.completion_tokens == body.usage.completion_tokens


def test_openai_best_of_returns_the_likeliest(srv, client, model):
    r = client.completions.create(model=model, prompt=PROMPT, max_tokens=6, temperature=1.0, seed=70, best_of=3, n=1)
    assert len(r.choices) == 1
    # The three candidates are the seeded sequences 70, 71, 72; the answer is the one of highest mean log-prob.
    candidates = [lorax_details(srv.url, 70 + i) for i in range(3)]
    best = max(candidates, key=lambda c: mean_logprob(c["details"]["tokens"]))
    assert r.choices[0].text == best["generated_text"]
    assert r.usage.completion_tokens == sum(c["details"]["generated_tokens"] for c in candidates)
    two = client.completions.create(model=model, prompt=PROMPT, max_tokens=6, temperature=1.0, seed=70, best_of=3, n=2)
    ranked = sorted(candidates, key=lambda c: -mean_logprob(c["details"]["tokens"]))
    assert [c.text for c in two.choices] == [c["generated_text"] for c in ranked[:2]]


def test_lorax_best_of_through_the_client(srv):
    client = lorax.Client(srv.url)
    r = client.generate(PROMPT, max_new_tokens=6, best_of=3, do_sample=True, details=True)
    seqs = r.details.best_of_sequences
    assert len(seqs) == 2
    best = sum(t.logprob for t in r.details.tokens) / len(r.details.tokens)
    for s in seqs:
        assert best >= sum(t.logprob for t in s.tokens) / len(s.tokens)
        assert s.generated_text and s.seed is not None and s.seed != r.details.seed
    plain = client.generate(PROMPT, max_new_tokens=3, details=True)
    assert plain.details.best_of_sequences is None


@pytest.mark.parametrize("route,body,words", [
    ("/generate", {"inputs": PROMPT, "parameters": {"best_of": 5, "do_sample": True}}, "best_of"),
    ("/generate", {"inputs": PROMPT, "parameters": {"best_of": 2}}, "sampling"),
    ("/generate", {"inputs": PROMPT, "parameters": {"best_of": 2, "do_sample": True, "seed": 3}}, "seed"),
    ("/generate_stream", {"inputs": PROMPT, "parameters": {"best_of": 2, "do_sample": True}}, "best_of"),
    ("/generate", {"inputs": PROMPT, "parameters": {"best_of": 0}}, "best_of"),
    ("/v1/completions", {"prompt": PROMPT, "n": 5}, "n"),
    ("/v1/completions", {"prompt": PROMPT, "n": 0}, "n"),
    ("/v1/completions", {"prompt": PROMPT, "n": 3, "best_of": 2}, "best_of"),
    ("/v1/completions", {"prompt": PROMPT, "n": 1, "best_of": 2, "stream": True}, "stream"),
    ("/v1/completions", {"prompt": PROMPT, "best_of": 9}, "best_of"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "n": "2"}, "n"),
])
def test_bad_sequence_counts_are_422(srv, route, body, words):
    r = requests.post(srv.url + route, json=body, timeout=30)
    assert r.status_code == 422, r.text
    assert words in r.json()["error"]


def test_openai_client_sees_the_limit(client, model):
    with pytest.raises(openai.UnprocessableEntityError):
        client.completions.create(model=model, prompt=PROMPT, n=8)


def test_info_reports_the_limits(srv):
    info = requests.get(srv.url + "/info", timeout=10).json()
    assert info["max_best_of"] == 4 and info["max_top_n_tokens"] == 20
    for key in ("max_loaded_adapters", "max_host_adapters", "max_active_adapters"):
        assert isinstance(info[key], int) and info[key] > 0
    assert info["preloaded_adapters"] == []


def test_queue_room_for_all_sequences_or_none(start_server):
    s = start_server("--max-best-of", "4", "--max-waiting-requests", "2")
    r = requests.post(s.url + "/v1/completions", json={"prompt": PROMPT, "n": 3, "max_tokens": 2}, timeout=30)
    assert r.status_code == 429, r.text  # three sequences never fit a queue of two
    r = requests.post(s.url + "/v1/completions", json={"prompt": PROMPT, "n": 2, "max_tokens": 2}, timeout=30)
    assert r.status_code == 200 and len(r.json()["choices"]) == 2
    assert json.loads(requests.get(s.url + "/info", timeout=10).text)["max_waiting_requests"] == 2
