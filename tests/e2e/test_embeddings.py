"""Sentence embeddings of the Qwen2 embedding fixture (tests/fixtures/models/qwen2-embed, sentence-transformers'
layout and float64 references from scripts/make-embedding-fixture.py): POST /embed through lorax-client and POST
/v1/embeddings through the openai client match sentence-transformers within cosine 0.99999 and 1e-4 (CPU fp32),
with the LoRA adapter too, in batches that mix lengths, under a KV cache small enough to chunk and preempt; without
the Normalize module the unnormalized vectors come out; bad requests are 422s and generation is refused."""
import base64
import json
import math
import pathlib
import shutil
import struct
from concurrent.futures import ThreadPoolExecutor

import lorax
import openai
import pytest
import requests

REPO = pathlib.Path(__file__).resolve().parents[2]
MODEL = REPO / "tests" / "fixtures" / "models" / "qwen2-embed"
ADAPTER = REPO / "tests" / "fixtures" / "adapters" / "qwen2-embed" / "attn-r4"
REF = json.loads((MODEL / "reference-embeddings.json").read_text())


def close(got, want):
    cos = sum(a * b for a, b in zip(got, want)) / math.sqrt(sum(a * a for a in got) * sum(b * b for b in want))
    return cos >= 0.99999 and max(abs(a - b) for a, b in zip(got, want)) <= 1e-4


@pytest.fixture(scope="module")
def srv(start_server):
    return start_server("--adapter-root", ADAPTER.parent, model=MODEL)


@pytest.fixture(scope="module")
def client(srv):
    return openai.OpenAI(base_url=srv.url + "/v1", api_key="unused")


def test_openai_embeddings_match_sentence_transformers(client):
    model = client.models.list().data[0].id
    r = client.embeddings.create(model=model, input=REF["texts"], encoding_format="float")
    assert [d.index for d in r.data] == list(range(len(REF["texts"])))
    for d, want in zip(r.data, REF["float64"]["normalized"]):
        assert len(d.embedding) == 32 and close(d.embedding, want)
    assert r.usage.prompt_tokens == sum(len(i) for i in REF["input_ids"]) == r.usage.total_tokens
    # Token ids in, base64 out (the openai client decodes base64 itself when it asked for it).
    raw = requests.post(str(client.base_url) + "embeddings",
                        json={"model": model, "input": REF["input_ids"], "encoding_format": "base64"}, timeout=60).json()
    for d, want in zip(raw["data"], REF["float64"]["normalized"]):
        floats = struct.unpack(f"<{len(want)}f", base64.b64decode(d["embedding"]))
        assert close(floats, want)


def test_lorax_embed_with_and_without_the_adapter(srv):
    c = lorax.Client(srv.url)
    for text, want in zip(REF["texts"], REF["float64"]["normalized"]):
        assert close(c.embed(text).embeddings, want)
    for text, want in zip(REF["texts"], REF["adapter"]["normalized"]):
        r = requests.post(srv.url + "/embed", json={"inputs": text, "parameters": {
            "adapter_id": str(ADAPTER), "adapter_source": "local"}}, timeout=60)
        assert r.status_code == 200, r.text
        assert close(r.json()["embeddings"], want)


def test_concurrent_requests_under_a_small_kv_cache(start_server):
    # 64 KV slots: the 63-token text fills them, others wait or get preempted, prefills are chunked.
    s = start_server("--kv-cache-tokens", "64", "--max-batch-prefill-tokens", "16", "--max-input-length", "63",
                     "--max-total-tokens", "64", model=MODEL)
    jobs = [(t, w) for t, w in zip(REF["texts"], REF["float64"]["normalized"])] * 4

    def run(job):
        r = requests.post(s.url + "/embed", json={"inputs": job[0]}, timeout=120)
        assert r.status_code == 200, r.text
        return close(r.json()["embeddings"], job[1])

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(run, jobs))
    assert s.stop() == 0


def test_without_normalize_the_vectors_are_not_normalized(start_server, tmp_path):
    folder = tmp_path / "unnormalized"
    shutil.copytree(MODEL, folder)
    modules = [m for m in json.loads((folder / "modules.json").read_text()) if not m["type"].endswith("Normalize")]
    (folder / "modules.json").write_text(json.dumps(modules))
    s = start_server(model=folder)
    r = requests.post(s.url + "/v1/embeddings", json={"input": REF["texts"]}, timeout=60).json()
    for d, want in zip(r["data"], REF["float64"]["unnormalized"]):
        assert close(d["embedding"], want)
        assert abs(math.sqrt(sum(x * x for x in d["embedding"])) - 1.0) > 1e-3
    assert s.stop() == 0


@pytest.mark.parametrize("route,body,words", [
    ("/v1/embeddings", {"input": []}, "input"),
    ("/v1/embeddings", {"input": [""]}, "empty"),
    ("/v1/embeddings", {"input": [1, "a"]}, "input"),
    ("/v1/embeddings", {"input": ["a", [1, 2]]}, "input"),
    ("/v1/embeddings", {"input": [[1, 2], "a"]}, "mix"),
    ("/v1/embeddings", {"input": [[-1]]}, "token"),
    ("/v1/embeddings", {"input": [[99999]]}, "vocabulary"),
    ("/v1/embeddings", {"input": "a", "encoding_format": "int8"}, "encoding_format"),
    ("/v1/embeddings", {"input": "a", "dimensions": 16}, "dimensions"),
    ("/v1/embeddings", {"input": "a", "temperature": 1}, "temperature"),
    ("/v1/embeddings", {"input": ["a"] * 257}, "at most"),
    ("/v1/embeddings", {"input": "word " * 2000}, "tokens"),
    ("/embed", {"inputs": 3}, "inputs"),
    ("/embed", {"inputs": "a", "parameters": {"max_new_tokens": 5}}, "max_new_tokens"),
    ("/generate", {"inputs": "a"}, "embedding model"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "a"}]}, "embedding model"),
])
def test_bad_embedding_requests_are_422(srv, route, body, words):
    r = requests.post(srv.url + route, json=body, timeout=30)
    assert r.status_code == 422, r.text
    assert words in r.json()["error"]


def test_dimensions_equal_to_the_models_are_fine_and_info_says_what_it_is(srv, client):
    model = client.models.list().data[0].id
    r = client.embeddings.create(model=model, input="hello", dimensions=32)
    assert len(r.data[0].embedding) == 32
    info = requests.get(srv.url + "/info", timeout=10).json()
    assert info["model_pipeline_tag"] == "feature-extraction" and info["embedding_dimension"] == 32
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-adapter", input="hello")


def test_a_generation_model_has_no_embeddings(start_server):
    s = start_server(model=REPO / "tests" / "fixtures" / "models" / "llama")
    for route in ("/embed", "/v1/embeddings"):
        r = requests.post(s.url + route, json={"inputs": "a", "input": "a"}, timeout=30)
        assert r.status_code == 404 and "not an embedding model" in r.json()["error"]
    assert s.stop() == 0
