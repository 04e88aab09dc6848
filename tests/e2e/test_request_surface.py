"""The rest of the LoRAX and OpenAI request fields, through the real clients: LoRAX `truncate` keeps the prompt's last
tokens, `watermark` is refused (not implemented) rather than ignored, `adapter_parameters` is read as LoRAX's other
name of `merged_adapters`; OpenAI `user` is accepted and changes nothing, `stop` as a string or a list (cut from the answer, streamed too),
`max_completion_tokens`, and `seed` reproduces a sampled answer."""
import pathlib

import lorax
import openai
import pytest
import requests

REPO = pathlib.Path(__file__).resolve().parents[2]
SOURCES = REPO / "tests" / "fixtures" / "adapters" / "llama"


@pytest.fixture(scope="module")
def client(server):
    return server.openai()[0]


@pytest.fixture(scope="module")
def model(server):
    return server.openai()[1]


def test_truncate_keeps_the_last_tokens(server):
    c = lorax.Client(server.url)
    full = c.generate("one two three four five six", max_new_tokens=3, decoder_input_details=True)
    cut = c.generate("one two three four five six", max_new_tokens=3, truncate=3, decoder_input_details=True)
    assert [t.id for t in cut.details.prefill] == [t.id for t in full.details.prefill][-3:]
    assert cut.details.prompt_tokens == 3


def test_watermark_is_refused_not_ignored(server):
    with pytest.raises(lorax.errors.ValidationError):
        lorax.Client(server.url).generate("Hello", max_new_tokens=2, watermark=True)


def test_user_changes_nothing(client, model):
    kw = dict(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=6, temperature=0)
    assert client.chat.completions.create(**kw, user="someone").choices[0].message.content == \
        client.chat.completions.create(**kw).choices[0].message.content


def test_stop_as_string_or_list_is_cut_from_the_answer(client, model):
    free = client.completions.create(model=model, prompt="Hello there", max_tokens=12, temperature=0).choices[0].text
    stop = next(free[i:i + 2] for i in range(1, len(free) - 1) if free[i:i + 2].isascii() and free[i:i + 2].isalpha())
    want = free[:free.index(stop)]  # OpenAI: the answer stops before the stop sequence and does not contain it
    for s in (stop, [stop, "never-appears"]):
        r = client.completions.create(model=model, prompt="Hello there", max_tokens=12, temperature=0, stop=s)
        assert (r.choices[0].text, r.choices[0].finish_reason) == (want, "stop")
        streamed = "".join(c.choices[0].text for c in client.completions.create(
            model=model, prompt="Hello there", max_tokens=12, temperature=0, stop=s, stream=True) if c.choices)
        assert streamed == want


def test_fields_not_implemented_are_refused_not_ignored(client, model):
    chat = dict(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    for call, kw, field in [(client.chat.completions.create, dict(chat, logit_bias={"5": 10}), "logit_bias"),
                            (client.completions.create, dict(model=model, prompt="hi", logit_bias={"5": 10}),
                             "logit_bias"),
                            (client.chat.completions.create,
                             dict(chat, stream=True, stream_options={"include_usage": True,
                                                                     "continuous_usage_stats": True}),
                             "continuous_usage_stats")]:
        with pytest.raises(openai.UnprocessableEntityError) as e:
            call(**kw)
        assert field in str(e.value.body)


def test_max_completion_tokens_and_seed(client, model):
    kw = dict(model=model, messages=[{"role": "user", "content": "hi"}], temperature=1.0, seed=123,
              max_completion_tokens=5)
    a, b = client.chat.completions.create(**kw), client.chat.completions.create(**kw)
    assert a.usage.completion_tokens <= 5
    assert a.choices[0].message.content == b.choices[0].message.content
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(**{**kw, "max_completion_tokens": 0})


def test_adapter_parameters_is_merged_adapters(start_server):
    s = start_server("--adapter-root", SOURCES, model=REPO / "tests" / "fixtures" / "models" / "llama")
    m = {"ids": [str(SOURCES / "merge-a"), str(SOURCES / "merge-b")], "weights": [0.6, 0.3]}

    def run(field, value):
        r = requests.post(s.url + "/generate", json={"inputs": "Hello", "parameters": {
            field: value, "adapter_source": "local", "max_new_tokens": 6, "details": True}}, timeout=60)
        assert r.status_code == 200, r.text
        return [t["id"] for t in r.json()["details"]["tokens"]]

    assert run("adapter_parameters", m) == run("merged_adapters", m)
    r = requests.post(s.url + "/generate", json={"inputs": "Hello", "parameters": {
        "adapter_parameters": m, "merged_adapters": m, "adapter_source": "local"}}, timeout=60)
    assert r.status_code == 422 and "both" in r.json()["error"]
    assert s.stop() == 0
