"""Structured output through the real server: every constrained output parses and validates against its schema
(jsonschema is the judge, structured_schemas.py) on the demo model and on fixture models, greedy and sampled,
streamed and not, in mixed batches with free requests and adapters; a constrained greedy output equals the free
greedy output whenever that output already satisfies the schema; clear 422s for what is not supported."""
import concurrent.futures
import json
import pathlib

import openai
import pytest
import requests
from lorax import Client

from structured_schemas import SCHEMAS, check

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # lorax-client 0.6 uses pydantic v1 .dict()

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
PROMPTS = ["Answer in JSON: ", "Copyright (C) 2009 ", "This License"]


def sse_events(resp):
    for line in resp.iter_lines(decode_unicode=True):
        if line and line.startswith("data:"):
            yield json.loads(line[5:])


def generate(url, prompt, schema, stream=False, **params):
    fmt = {"type": "json_object"} if schema is None else {"type": "json_object", "schema": schema}
    body = {"inputs": prompt, "parameters": {"max_new_tokens": 200, "details": True, "response_format": fmt, **params}}
    if not stream:
        r = requests.post(url + "/generate", json=body, timeout=300)
        assert r.status_code == 200, r.text
        out = r.json()
        return out["generated_text"], out["details"]["finish_reason"]
    with requests.post(url + "/generate_stream", json=body, stream=True, timeout=300) as r:
        assert r.status_code == 200, r.text
        events = list(sse_events(r))
    text = "".join(e["token"]["text"] for e in events if not e["token"]["special"])
    assert text == events[-1]["generated_text"]
    return text, events[-1]["details"]["finish_reason"]


def run_all(url, cases, workers=8):
    """Sends every (prompt, schema, stream, params) case at once, so constrained requests share batches."""
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(generate, url, p, s, st, **kw) for p, s, st, kw in cases]
        return [f.result() for f in futures]


def judge(cases, results, min_complete):
    complete = 0
    for (prompt, schema, _, params), (text, reason) in zip(cases, results):
        if reason == "length":
            continue  # max_new_tokens inside a value: never reported as complete
        assert reason == "eos_token", (reason, text)
        complete += 1
        try:
            check(text, schema if schema is not None else {"type": "object"})
        except Exception as e:  # noqa: BLE001 - the message says which case failed
            raise AssertionError(f"{prompt!r} {params} {json.dumps(schema)}: {text!r}: {e}") from e
    assert complete >= min_complete * len(cases), f"only {complete} of {len(cases)} outputs ended"


@pytest.fixture(scope="module")
def demo(start_server):
    return start_server("--max-total-tokens", "512", "--max-running", "64", model=REPO / "models" / "demo")


def test_every_schema_greedy_and_sampled_on_the_demo_model(demo):
    cases = []
    for i, schema in enumerate(SCHEMAS):
        cases.append((PROMPTS[i % 3], schema, i % 2 == 0, {}))
        for seed in (1, 2):
            cases.append((PROMPTS[(i + seed) % 3], schema, (i + seed) % 2 == 0,
                          {"do_sample": True, "temperature": 1.0, "seed": seed * 100 + i}))
    cases.append((PROMPTS[0], None, False, {}))
    cases.append((PROMPTS[1], None, True, {"do_sample": True, "seed": 7}))
    assert len(SCHEMAS) >= 50
    judge(cases, run_all(demo.url, cases), min_complete=0.8)


def test_max_new_tokens_inside_a_value_is_length(demo):
    schema = {"type": "object", "properties": {"text": {"type": "string", "minLength": 50}}, "required": ["text"]}
    text, reason = generate(demo.url, PROMPTS[0], schema, max_new_tokens=5)
    assert reason == "length"
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def free_greedy_tokens(url, prompt, n):
    r = requests.post(url + "/generate", json={"inputs": prompt, "parameters": {
        "max_new_tokens": n, "details": True, "ignore_eos_token": True}}, timeout=120)
    return [t["text"] for t in r.json()["details"]["tokens"]]


def test_constrained_greedy_equals_free_greedy_when_the_free_output_already_fits(demo):
    """Masking must not change an allowed choice: for every prefix of the free greedy output that is already a
    valid text of the schema (no trailing whitespace: the matcher ends a text at its last byte), or an open string
    that one closing quote would make valid, the constrained greedy output with that many tokens is exactly that
    prefix."""
    schemas = [{"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": ["string", "integer"]},
               {"type": "integer", "minimum": 1900, "maximum": 2100}, {"type": "string", "maxLength": 12}]
    prompts = ["(the", "Licensed under the Apache License, Version 2.0 (the", "Copyright: 2012,", "Copyright: ",
               "Copyright (C) 2000,", "Version 1.", "GNU LESSER GENERAL PUBLIC LICENSE Version", "Boston, MA 0",
               "Copyright (c) 20", "documentation files (the"]

    def fits(text, schema):
        try:
            check(text, schema)
            return True
        except Exception:  # noqa: BLE001 - not a valid text of the schema
            return False

    checked = set()
    for prompt in prompts:
        tokens = free_greedy_tokens(demo.url, prompt, 8)
        for schema in schemas:
            for n in range(1, len(tokens) + 1):
                prefix = "".join(tokens[:n])
                if prefix != prefix.rstrip():
                    continue
                if not fits(prefix, schema) and not ('"' in prefix and fits(prefix + '"', schema)):
                    continue
                text, _ = generate(demo.url, prompt, schema, max_new_tokens=n)
                assert text == prefix, (prompt, schema, n)
                checked.add((prompt, json.dumps(schema)))
    assert len(checked) >= 12, f"only {len(checked)} cases: the prompts no longer exercise the property"


def test_fixture_models_with_adapters_in_mixed_batches(start_server):
    """Constrained and free requests, different schemas and adapters in one batch answer what they answer alone."""
    schemas = [SCHEMAS[26], SCHEMAS[44], SCHEMAS[48], {"type": "array", "items": {"type": "integer"}, "maxItems": 3},
               None]
    for model in ("llama", "gpt2", "qwen2", "gemma2"):
        adapters = sorted(p.name for p in (FIXTURES / "adapters" / model).iterdir())[:2]
        server = start_server("--max-total-tokens", "128", "--adapter-dir", FIXTURES / "adapters" / model,
                              model=FIXTURES / "models" / model)
        cases = []
        for i, schema in enumerate(schemas):
            for adapter in [None, *adapters]:
                params = {"max_new_tokens": 100, **({"adapter_id": adapter} if adapter else {})}
                if i % 2:
                    params.update(do_sample=True, seed=i + 10)
                cases.append(("Hello world", schema, i % 2 == 0, params))
        cases.append(("Hello world", None, False, {"max_new_tokens": 100}))
        alone = [generate(server.url, p, s, st, **kw) for p, s, st, kw in cases]
        together = run_all(server.url, cases, workers=len(cases))
        assert together == alone, model
        judge(cases, together, min_complete=0.5)
        free = requests.post(server.url + "/generate", json={"inputs": "Hello world", "parameters": {
            "max_new_tokens": 20}}, timeout=60).json()["generated_text"]
        with pytest.raises(json.JSONDecodeError):  # the fixture models do not write JSON by themselves
            json.loads(free)


def test_lorax_client_and_openai_round_trips(demo):
    schema = SCHEMAS[26]
    r = Client(demo.url).generate(PROMPTS[0], max_new_tokens=200, response_format={"type": "json_object",
                                                                                  "schema": schema})
    check(r.generated_text, schema)
    client = openai.OpenAI(base_url=demo.url + "/v1", api_key="none")
    chat = client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "Write JSON"}],
                                          max_tokens=200, response_format={"type": "json_object"})
    check(chat.choices[0].message.content, {"type": "object"})
    chat = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "A person"}], max_tokens=200, temperature=0.8, seed=3,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}})
    assert chat.choices[0].finish_reason == "stop"
    check(chat.choices[0].message.content, schema)
    # completions has no response_format parameter in the client: it travels as an extra body field, as with vLLM.
    stream = client.completions.create(model="demo", prompt="Copyright", max_tokens=200, stream=True,
                                       extra_body={"response_format": {"type": "json_schema", "json_schema": {
                                           "name": "n", "schema": SCHEMAS[4]}}})
    check("".join(c.choices[0].text for c in stream), SCHEMAS[4])


@pytest.mark.parametrize("schema, needle", [
    ({"type": "string", "pattern": "a+"}, "`pattern`"),
    ({"type": "number", "multipleOf": 2}, "`multipleOf`"),
    ({"type": "object", "minProperties": 1}, "`minProperties`"),
    ({"type": "string", "format": "hostname"}, "hostname"),
    ({"not": {"type": "null"}}, "`not`"),
    ({"$ref": "https://example.com/x.json"}, "`$ref`"),
    ({"type": "integer", "minimum": 3, "maximum": 2}, "no JSON value satisfies"),
    ({"type": "object", "properties": {"a": {"$ref": "#"}}, "required": ["a"]}, "no JSON value satisfies"),
    ({"type": "strung"}, "strung"),
    ("not a schema", "a schema must be"),
])
def test_unsupported_or_impossible_schemas_are_422(demo, schema, needle):
    r = requests.post(demo.url + "/generate", json={"inputs": "x", "parameters": {
        "response_format": {"type": "json_object", "schema": schema}}}, timeout=30)
    assert r.status_code == 422 and needle in r.json()["error"], r.text
    r = requests.post(demo.url + "/v1/chat/completions", json={
        "model": "demo", "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}}, timeout=30)
    assert r.status_code == 422 and needle in r.json()["error"], r.text


def test_bad_response_format_shapes_and_size_limit(start_server, demo):
    for rf in [{"type": "json"}, {"type": "json_object", "extra": 1}, "json", {"schema": {}}]:
        r = requests.post(demo.url + "/generate", json={"inputs": "x", "parameters": {"response_format": rf}},
                          timeout=30)
        assert r.status_code == 422, (rf, r.text)
    for rf in [{"type": "json_schema"}, {"type": "json_schema", "json_schema": {"schema": {}}},
               {"type": "xml"}, {"type": "json_schema", "json_schema": {"name": "x", "strict": "yes"}}]:
        r = requests.post(demo.url + "/v1/completions", json={"model": "m", "prompt": "x", "response_format": rf},
                          timeout=30)
        assert r.status_code == 422, (rf, r.text)
    small = start_server("--max-schema-bytes", "100", model=REPO / "models" / "demo")
    big = {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(20)}}
    r = requests.post(small.url + "/generate", json={"inputs": "x", "parameters": {
        "response_format": {"type": "json_object", "schema": big}}}, timeout=30)
    assert r.status_code == 422 and "--max-schema-bytes" in r.json()["error"], r.text
    assert requests.get(small.url + "/health", timeout=10).status_code == 200
