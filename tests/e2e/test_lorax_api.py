"""The LoRAX REST API through the real `lorax-client` package and through raw HTTP + SSE parsing."""
import json

import pytest
import requests
from lorax import AsyncClient, Client

# lorax-client 0.6 still calls pydantic v1 `.dict()`.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def sse_events(resp):
    """`data:` payloads of a Server-Sent-Events response, checking the framing (events end with a blank line)."""
    events, buf = [], ""
    for chunk in resp.iter_content(chunk_size=None, decode_unicode=False):
        buf += chunk.decode("utf-8")
        while "\n\n" in buf:
            event, buf = buf.split("\n\n", 1)
            assert event.startswith("data:"), event
            events.append(event[len("data:"):].strip())
    assert buf == "", f"unterminated event: {buf!r}"
    return events


def test_generate_with_lorax_client(server):
    client = Client(server.url)
    r = client.generate("The quick brown fox", max_new_tokens=10, decoder_input_details=True)
    d = r.details
    assert d.generated_tokens == len(d.tokens) <= 10
    assert d.finish_reason in ("length", "eos_token")
    assert r.generated_text == "".join(t.text for t in d.tokens if not t.special)
    # The prompt as the server tokenized it: first logprob null, the others real log-probabilities.
    tok = requests.post(server.url + "/tokenize", json={"inputs": "The quick brown fox"}).json()
    assert [t.id for t in d.prefill] == [t["id"] for t in tok]
    assert d.prompt_tokens == len(tok)
    assert d.prefill[0].logprob is None and all(t.logprob <= 0 for t in d.prefill[1:])


def test_stream_matches_generate_with_lorax_client(server):
    client = Client(server.url)
    full = client.generate("Paged attention keeps", max_new_tokens=16)
    events = list(client.generate_stream("Paged attention keeps", max_new_tokens=16))
    assert events[-1].generated_text == full.generated_text
    assert all(e.generated_text is None and e.details is None for e in events[:-1])
    assert events[-1].details.generated_tokens == len(events) == full.details.generated_tokens
    assert [e.token.id for e in events] == [t.id for t in full.details.tokens]


def test_async_client_and_stop_sequence(server):
    import asyncio

    async def run():
        client = AsyncClient(server.url)
        base = await client.generate("Hello world! How are", max_new_tokens=12, ignore_eos_token=True)
        text = base.generated_text
        assert len(text) >= 3
        stop = text[1:3]  # a stop sequence the greedy continuation is known to produce
        stopped = await client.generate("Hello world! How are", max_new_tokens=12, stop_sequences=[stop],
                                        ignore_eos_token=True)
        assert stopped.details.finish_reason == "stop_sequence"
        assert stop in stopped.generated_text and text.startswith(stopped.generated_text)
    asyncio.run(run())


def test_generate_stream_sse_shape(server):
    body = {"inputs": "Continuous batching mixes", "parameters": {"max_new_tokens": 8, "ignore_eos_token": True}}
    with requests.post(server.url + "/generate_stream", json=body, stream=True, timeout=60) as resp:
        assert resp.status_code == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        events = [json.loads(e) for e in sse_events(resp)]
    assert len(events) == 8
    for e in events[:-1]:
        assert e["generated_text"] is None and e["details"] is None
        assert set(e["token"]) >= {"id", "text", "logprob", "special"}
    last = events[-1]
    assert last["details"]["finish_reason"] == "length" and last["details"]["generated_tokens"] == 8
    assert last["generated_text"] == "".join(e["token"]["text"] for e in events)
    plain = requests.post(server.url + "/generate", json=body, timeout=60).json()
    assert plain["generated_text"] == last["generated_text"]


def test_compat_root_endpoint(server):
    body = {"inputs": "Low-rank adapters", "parameters": {"max_new_tokens": 5, "details": True}, "stream": False}
    r = requests.post(server.url + "/", json=body, timeout=60)
    assert r.status_code == 200 and isinstance(r.json(), list) and "generated_text" in r.json()[0]
    body["stream"] = True
    with requests.post(server.url + "/", json=body, stream=True, timeout=60) as resp:
        events = [json.loads(e) for e in sse_events(resp)]
    assert events[-1]["generated_text"] == r.json()[0]["generated_text"]


def test_return_full_text_and_seed(server):
    body = {"inputs": "Numbers:", "parameters": {"max_new_tokens": 6, "do_sample": True, "seed": 42,
                                                "return_full_text": True, "details": True}}
    a = requests.post(server.url + "/generate", json=body).json()
    b = requests.post(server.url + "/generate", json=body).json()
    assert a == b and a["generated_text"].startswith("Numbers:") and a["details"]["seed"] == 42


def test_info_health_models_tokenize(server, model_dir):
    assert requests.get(server.url + "/health").status_code == 200
    info = requests.get(server.url + "/info").json()
    assert info["model_id"] == str(model_dir) and info["max_total_tokens"] == 2048
    assert info["model_dtype"] == "float32" and info["model_device_type"] == "cpu"  # what the CPU backend runs
    models = requests.get(server.url + "/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["id"] == str(model_dir)
    from tokenizers import Tokenizer
    ref = Tokenizer.from_file(str(model_dir / "tokenizer.json")).encode("Grüße aus 東京").ids
    got = requests.post(server.url + "/tokenize", json={"inputs": "Grüße aus 東京"}).json()
    assert [t["id"] for t in got] == ref
