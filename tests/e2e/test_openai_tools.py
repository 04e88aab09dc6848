"""OpenAI function calling through the real server with the `openai` client: a required or named tool_choice is
decoded under the tools' parameter schemas (jsonschema judges the arguments), answered as tool_calls with
finish_reason "tool_calls", streamed as deltas too; auto and none answer text when the model writes text."""
import json
import pathlib

import jsonschema
import openai
import pytest
import requests

REPO = pathlib.Path(__file__).resolve().parents[2]
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "parameters": {
    "type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                                     "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"], "additionalProperties": False}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}}, "required": ["zone"],
    "additionalProperties": False}}}
TOOLS = {t["function"]["name"]: t for t in (WEATHER, TIME)}
MESSAGES = [{"role": "user", "content": "What is the weather in Oslo?"}]


@pytest.fixture(scope="module")
def client(start_server):
    server = start_server("--max-total-tokens", "512", model=REPO / "models" / "demo")
    return openai.OpenAI(base_url=server.url + "/v1", api_key="none"), server


def check_calls(calls, names):
    assert calls, "no tool calls"
    for c in calls:
        assert c.type == "function" and c.id
        assert c.function.name in names
        jsonschema.validate(json.loads(c.function.arguments), TOOLS[c.function.name]["function"]["parameters"])


def test_named_tool_choice(client):
    c, _ = client
    for params in ({}, {"temperature": 1.0, "seed": 5}):
        r = c.chat.completions.create(model="demo", messages=MESSAGES, tools=[WEATHER, TIME], max_tokens=200,
                                      tool_choice={"type": "function", "function": {"name": "get_weather"}}, **params)
        choice = r.choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.content is None
        check_calls(choice.message.tool_calls, {"get_weather"})
        assert len(choice.message.tool_calls) == 1


def test_required_tool_choice_sampled_and_streamed(client):
    c, _ = client
    for seed in range(4):
        r = c.chat.completions.create(model="demo", messages=MESSAGES, tools=[WEATHER, TIME], tool_choice="required",
                                      max_tokens=300, temperature=1.0, seed=seed)
        assert r.choices[0].finish_reason == "tool_calls"
        check_calls(r.choices[0].message.tool_calls, {"get_weather", "get_time"})
    for seed in range(3):  # parallel_tool_calls false: exactly one call
        r = c.chat.completions.create(model="demo", messages=MESSAGES, tools=[WEATHER, TIME], tool_choice="required",
                                      max_tokens=300, temperature=1.0, seed=seed, parallel_tool_calls=False)
        assert len(r.choices[0].message.tool_calls) == 1
        check_calls(r.choices[0].message.tool_calls, {"get_weather", "get_time"})
    stream = c.chat.completions.create(model="demo", messages=MESSAGES, tools=[WEATHER, TIME], tool_choice="required",
                                       max_tokens=300, stream=True)
    calls, finish, content = {}, None, ""
    for chunk in stream:
        d = chunk.choices[0].delta
        content += d.content or ""
        for tc in d.tool_calls or []:
            entry = calls.setdefault(tc.index, {"name": "", "arguments": ""})
            entry["name"] += tc.function.name or ""
            entry["arguments"] += tc.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls" and content == ""
    assert calls
    for entry in calls.values():
        jsonschema.validate(json.loads(entry["arguments"]), TOOLS[entry["name"]]["function"]["parameters"])


def test_auto_and_none_answer_text_the_model_writes(client):
    c, _ = client
    for choice in ("auto", "none"):
        r = c.chat.completions.create(model="demo", messages=MESSAGES, tools=[WEATHER], tool_choice=choice,
                                      max_tokens=30)
        assert r.choices[0].message.tool_calls is None
        assert r.choices[0].finish_reason in ("stop", "length") and r.choices[0].message.content
    streamed = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
        model="demo", messages=MESSAGES, tools=[WEATHER], max_tokens=30, stream=True))
    plain = c.chat.completions.create(model="demo", messages=MESSAGES, tools=[WEATHER], max_tokens=30)
    assert streamed == plain.choices[0].message.content


@pytest.mark.parametrize("body, needle", [
    ({"tool_choice": {"type": "function", "function": {"name": "nope"}}, "tools": [WEATHER]}, "nope"),
    ({"tool_choice": "required"}, "`tool_choice` needs `tools`"),
    ({"tool_choice": "always", "tools": [WEATHER]}, "`tool_choice`"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string", "pattern": "x"}}}],
      "tool_choice": "required"}, "`pattern`"),
    ({"tools": [WEATHER], "tool_choice": "required", "response_format": {"type": "json_object"}}, "cannot be combined"),
    ({"tools": [WEATHER, WEATHER]}, "two tools"),
    ({"tools": [WEATHER], "parallel_tool_calls": "no"}, "`parallel_tool_calls`"),
    ({"tools": [{"type": "function", "function": {"name": "f", "params": {}}}]}, "`params`"),
])
def test_bad_tool_requests_are_422(client, body, needle):
    _, server = client
    r = requests.post(server.url + "/v1/chat/completions", json={"model": "demo", "messages": MESSAGES, **body},
                      timeout=30)
    assert r.status_code == 422 and needle in r.json()["error"], r.text
