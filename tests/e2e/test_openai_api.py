"""The OpenAI-compatible endpoints through the real `openai` package. The chat prompt is checked against an
independent rendering: Python jinja2 renders the model's chat template and `tokenizers` encodes it."""
import json

import openai
import pytest
import requests
from tokenizers import Tokenizer

from e2e_reference import reference_chat_ids

MESSAGES = [{"role": "system", "content": "You are brief."}, {"role": "user", "content": "Hello world! How are you?"}]


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused")


def test_chat_completion(client, server, model_dir):
    r = client.chat.completions.create(model=str(model_dir), messages=MESSAGES, max_tokens=8, temperature=0)
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
    assert r.usage.prompt_tokens == len(reference_chat_ids(model_dir, MESSAGES))
    assert r.usage.completion_tokens <= 8 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.model == str(model_dir)


def test_chat_stream_matches_non_stream(client, model_dir):
    full = client.chat.completions.create(model=str(model_dir), messages=MESSAGES, max_tokens=10, temperature=0)
    chunks = list(client.chat.completions.create(model=str(model_dir), messages=MESSAGES, max_tokens=10,
                                                 temperature=0, stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [full.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == full.usage.prompt_tokens


def test_completions_match_generate(client, server, model_dir):
    prompt = "The quick brown fox"
    r = client.completions.create(model=str(model_dir), prompt=prompt, max_tokens=9, temperature=0)
    g = requests.post(server.url + "/generate", json={"inputs": prompt, "parameters": {"max_new_tokens": 9}}).json()
    assert r.choices[0].text == g["generated_text"]
    assert r.usage.prompt_tokens == len(Tokenizer.from_file(str(model_dir / "tokenizer.json")).encode(prompt).ids)
    streamed = client.completions.create(model=str(model_dir), prompt=prompt, max_tokens=9, temperature=0,
                                         stream=True)
    assert "".join(c.choices[0].text for c in streamed) == g["generated_text"]


def test_raw_stream_ends_with_done(server):
    body = {"prompt": "Hello", "max_tokens": 3, "stream": True}
    with requests.post(server.url + "/v1/completions", json=body, stream=True, timeout=60) as resp:
        lines = [l for l in resp.iter_lines(decode_unicode=True) if l]
    assert lines[-1] == "data: [DONE]"
    assert all(l.startswith("data: ") for l in lines)


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-adapter", messages=MESSAGES, max_tokens=2)


def test_bad_openai_params_are_422(client, model_dir):
    with pytest.raises(openai.UnprocessableEntityError):
        client.completions.create(model=str(model_dir), prompt="x", max_tokens=2, temperature=-1)
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model=str(model_dir), messages=[{"content": "no role"}], max_tokens=2)
