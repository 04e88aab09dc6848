"""Prefix caching through the real server: requests sharing a long system prompt reuse its K/V blocks
(details.cached_tokens, OpenAI usage.prompt_tokens_details.cached_tokens, the lorax_prefix_cache_* metrics)
and answer exactly what a server with --prefix-caching off answers, through lorax-client and openai."""
import subprocess

import openai
import pytest
import requests
from lorax import Client

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # lorax-client 0.6 uses pydantic v1 .dict()

SYSTEM = ("You are a careful assistant. Answer briefly, cite the paged attention paper when asked about key "
          "value caches, prefer plain words, keep lists short and never invent numbers or names. ") * 3
QUESTIONS = ["What is a LoRA adapter?", "Why batch requests?", "What does a KV cache hold?", "Name a fox."]
FLAGS = ("--block-size", "16", "--max-total-tokens", "512", "--kv-cache-tokens", "4096")


def generate(url, prompt, **params):
    r = requests.post(url + "/generate", json={"inputs": prompt, "parameters": {"max_new_tokens": 8, "details": True,
                                                                               **params}}, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def prompt_tokens(url, prompt):
    return len(requests.post(url + "/tokenize", json={"inputs": prompt}, timeout=30).json())


def test_a_shared_system_prompt_is_reused_and_changes_nothing(start_server):
    on = start_server(*FLAGS)
    off = start_server(*FLAGS, "--prefix-caching", "off")
    shared = prompt_tokens(on.url, SYSTEM)
    assert shared > 32, "the system prompt must span several blocks"
    first = generate(on.url, SYSTEM + QUESTIONS[0])
    assert first["details"]["cached_tokens"] == 0
    hits_before = on.metric("lorax_prefix_cache_hits_total")
    for q in QUESTIONS:
        got, want = generate(on.url, SYSTEM + q), generate(off.url, SYSTEM + q)
        assert got["generated_text"] == want["generated_text"], q
        assert [t["id"] for t in got["details"]["tokens"]] == [t["id"] for t in want["details"]["tokens"]]
        for a, b in zip(got["details"]["tokens"], want["details"]["tokens"]):
            assert abs(a["logprob"] - b["logprob"]) < 1e-4, q
        # Every full block of the shared part (and of the whole prompt for the repeated question) is reused.
        cached = got["details"]["cached_tokens"]
        assert cached >= shared // 16 * 16 - 16 and cached % 16 == 0 and cached < got["details"]["prompt_tokens"], cached
        assert want["details"]["cached_tokens"] == 0
    assert on.metric("lorax_prefix_cache_hits_total") > hits_before
    assert on.metric("lorax_prefix_cache_queries_total") >= on.metric("lorax_prefix_cache_hits_total")
    assert on.metric("lorax_prefix_cache_blocks") >= shared // 16
    assert off.metric("lorax_prefix_cache_hits_total") == 0 and off.metric("lorax_prefix_cache_blocks") == 0
    assert on.metric("lorax_kv_cache_usage_ratio") == 0, "cached blocks nobody uses count as free"

    # lorax-client: the same answer; prompt log-probs are computed for the whole prompt, never taken from the cache.
    client = Client(on.url)
    r = client.generate(SYSTEM + QUESTIONS[1], max_new_tokens=8, decoder_input_details=True)
    assert r.generated_text == generate(off.url, SYSTEM + QUESTIONS[1])["generated_text"]
    raw = generate(on.url, SYSTEM + QUESTIONS[1], decoder_input_details=True)
    ref = generate(off.url, SYSTEM + QUESTIONS[1], decoder_input_details=True)
    assert raw["details"]["cached_tokens"] == 0
    assert [p["id"] for p in raw["details"]["prefill"]] == [p["id"] for p in ref["details"]["prefill"]]
    for a, b in zip(raw["details"]["prefill"][1:], ref["details"]["prefill"][1:]):
        assert abs(a["logprob"] - b["logprob"]) < 1e-4
    assert len(r.details.prefill) == len(ref["details"]["prefill"])
    assert max(abs(p.logprob - q["logprob"]) for p, q in zip(r.details.prefill[1:], ref["details"]["prefill"][1:])) < 1e-4

    # openai: usage reports the cached prompt tokens, for completions and streamed usage.
    oa = openai.OpenAI(base_url=on.url + "/v1", api_key="unused")
    model = oa.models.list().data[0].id
    c = oa.completions.create(model=model, prompt=SYSTEM + QUESTIONS[2], max_tokens=8, temperature=0)
    assert c.usage.prompt_tokens_details.cached_tokens >= shared // 16 * 16 - 16
    ref_c = openai.OpenAI(base_url=off.url + "/v1", api_key="unused").completions.create(
        model=model, prompt=SYSTEM + QUESTIONS[2], max_tokens=8, temperature=0)
    assert c.choices[0].text == ref_c.choices[0].text
    assert ref_c.usage.prompt_tokens_details.cached_tokens == 0
    chunks = list(oa.completions.create(model=model, prompt=SYSTEM + QUESTIONS[3], max_tokens=4, temperature=0,
                                        stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens > 0
    assert on.stop() == 0 and off.stop() == 0


def test_prefix_caching_flag_takes_only_on_or_off(engine_bin, model_dir):
    for bad in ["maybe", "", "ON"]:
        r = subprocess.run([str(engine_bin), "serve", "--model", str(model_dir), "--port", "0", "--prefix-caching", bad],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "--prefix-caching must be on or off" in r.stderr, (bad, r.returncode, r.stderr)
