"""Chat templates rendered by lorax-engine must be byte-identical to Python
jinja2 configured as transformers configures it (see ct_jinja_reference.py).
The C++ side runs once per model through `lorax-engine chat-template --cases`."""
import json
import subprocess

import pytest

from conftest import SHARED
from ct_conversations import gemma3_cases, llama3_cases, qwen3_cases
from ct_jinja_reference import base_context, render
from ct_snippets import SNIPPETS

TOKENIZERS = SHARED / "tokenizers"


def load_config(model):
    return json.loads((TOKENIZERS / model / "tokenizer_config.json").read_text())


def run_cases(engine_bin, tmp_path, cases, tokenizer=None):
    """Renders each case (a dict with "context" and maybe "template") with the CLI batch mode."""
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases), encoding="utf-8")
    cmd = [str(engine_bin), "chat-template", "--cases", str(path)]
    if tokenizer:
        cmd += ["--tokenizer", str(tokenizer)]
    proc = subprocess.run(cmd, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    lines = proc.stdout.decode("utf-8").splitlines()
    assert len(lines) == len(cases)
    return [json.loads(line) for line in lines]


def assert_same(name, expected, got):
    kind, value = expected
    if kind == "ok":
        assert got["ok"], f"{name}: lorax failed with {got.get('error')!r}, jinja2 rendered {value!r}"
        assert got["text"] == value, f"{name}: output differs"
    elif kind == "raised":
        assert not got["ok"], f"{name}: jinja2 raised {value!r} but lorax rendered {got.get('text')!r}"
        assert got["error"] == value, f"{name}: raise_exception message differs"
    else:
        assert not got["ok"], f"{name}: jinja2 failed ({value}) but lorax rendered {got.get('text')!r}"


MODEL_CASES = {"llama3": llama3_cases, "qwen3": qwen3_cases, "gemma3": gemma3_cases}


@pytest.mark.parametrize("model", sorted(MODEL_CASES))
def test_model_template_matches_jinja2(engine_bin, tmp_path, model):
    config = load_config(model)
    template = config["chat_template"]
    cases = MODEL_CASES[model]()
    assert len(cases) >= 20
    names = list(cases)
    results = run_cases(engine_bin, tmp_path, [{"context": cases[n]} for n in names], TOKENIZERS / model)
    outcomes = {"ok": 0, "raised": 0, "error": 0}
    for name, got in zip(names, results):
        ctx = base_context(config)
        ctx.update(cases[name])
        expected = render(template, ctx)
        outcomes[expected[0]] += 1
        assert_same(f"{model}/{name}", expected, got)
    assert outcomes["ok"] >= 20
    if model == "gemma3":
        assert outcomes["raised"] >= 3  # role alternation and content type errors


def test_every_shared_template_is_covered():
    """Any tokenizer_config with a chat template (llama2 has none today) must be in MODEL_CASES."""
    with_template = {p.parent.name for p in TOKENIZERS.glob("*/tokenizer_config.json")
                     if json.loads(p.read_text()).get("chat_template")}
    assert with_template <= set(MODEL_CASES), with_template - set(MODEL_CASES)


@pytest.mark.parametrize("model", ["llama2", "gpt2"])
def test_model_without_template_is_a_clear_error(engine_bin, tmp_path, model):
    if load_config(model).get("chat_template"):
        pytest.skip("has a chat template")
    msgs = tmp_path / "m.json"
    msgs.write_text(json.dumps([{"role": "user", "content": "hi"}]))
    proc = subprocess.run([str(engine_bin), "chat-template", "--tokenizer", str(TOKENIZERS / model), "--messages", str(msgs)],
                          capture_output=True, timeout=30)
    assert proc.returncode == 1
    assert b"has no chat_template" in proc.stderr


def test_feature_snippets_match_jinja2(engine_bin, tmp_path):
    results = run_cases(engine_bin, tmp_path, [{"template": t, "context": c} for _, t, c in SNIPPETS])
    for (name, template, ctx), got in zip(SNIPPETS, results):
        assert_same(name, render(template, ctx), got)


def test_single_render_prints_exact_text(engine_bin, tmp_path):
    config = load_config("qwen3")
    case = qwen3_cases()["tool_call_round_trip"]
    msgs, tools = tmp_path / "m.json", tmp_path / "t.json"
    msgs.write_text(json.dumps(case["messages"], ensure_ascii=False), encoding="utf-8")
    tools.write_text(json.dumps(case["tools"], ensure_ascii=False), encoding="utf-8")
    proc = subprocess.run([str(engine_bin), "chat-template", "--tokenizer", str(TOKENIZERS / "qwen3" / "tokenizer_config.json"),
                           "--messages", str(msgs), "--tools", str(tools), "--add-generation-prompt"],
                          capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr.decode()
    ctx = base_context(config)
    ctx.update(case)
    assert render(config["chat_template"], ctx) == ("ok", proc.stdout.decode("utf-8"))


def test_raise_exception_exits_with_message(engine_bin, tmp_path):
    msgs = tmp_path / "m.json"
    msgs.write_text(json.dumps([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]))
    proc = subprocess.run([str(engine_bin), "chat-template", "--tokenizer", str(TOKENIZERS / "gemma3"), "--messages", str(msgs)],
                          capture_output=True, timeout=30)
    assert proc.returncode == 1
    assert proc.stderr.decode().strip() == "error: Conversation roles must alternate user/assistant/user/assistant/..."


@pytest.mark.parametrize("template", ["{% if x %}unclosed", "{{ x | nosuchfilter }}", "{{ 1 + }}", "{% for %}{% endfor %}",
                                      "{% endif %}", "{{ x is nosuchtest }}", "{% include 'other.j2' %}", "{{ 'abc }}"])
def test_malformed_templates_fail_cleanly(engine_bin, tmp_path, template):
    assert render(template, {})[0] == "error"  # jinja2 rejects these too
    (got,) = run_cases(engine_bin, tmp_path, [{"template": template, "context": {}}])
    assert not got["ok"] and "line 1" in got["error"]


def test_bad_cli_input(engine_bin, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for args in (["--tokenizer", str(TOKENIZERS / "qwen3"), "--messages", str(bad)],
                 ["--tokenizer", str(tmp_path / "missing"), "--messages", str(bad)],
                 ["--messages", str(bad)]):
        proc = subprocess.run([str(engine_bin), "chat-template", *args], capture_output=True, timeout=30)
        assert proc.returncode in (1, 2)
        assert proc.stderr.decode().startswith("error: ") and proc.stderr.decode().count("\n") == 1


def test_hostile_templates_end_with_errors(engine_bin, tmp_path):
    """Deep nesting, runaway recursion and runaway loops give one-line errors, not crashes or hangs."""
    cases = {
        "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}": "template nesting too deep at line 1",
        "{{ " + "not " * 5000 + "1 }}": "template nesting too deep at line 1",
        "{% if true %}" * 3000 + "x" + "{% endif %}" * 3000: "template nesting too deep at line 1",
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}": "maximum macro recursion depth exceeded at line 1",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}":
            "loop iteration limit exceeded (2000000 per render) at line 1",
    }
    results = run_cases(engine_bin, tmp_path, [{"template": t, "context": {}} for t in cases])
    for (template, error), got in zip(cases.items(), results):
        assert got == {"ok": False, "error": error}, template[:60]
    # A reasonable recursion depth still works (and matches jinja2).
    template = "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{% endif %}{{ n }}{% endmacro %}{{ f(50) }}"
    (got,) = run_cases(engine_bin, tmp_path, [{"template": template, "context": {}}])
    assert ("ok", got["text"]) == render(template, {})


def test_deeply_nested_json_input_is_rejected(engine_bin, tmp_path):
    deep = "[" * 100000 + "]" * 100000
    msgs = tmp_path / "deep.json"
    msgs.write_text(deep)
    proc = subprocess.run([str(engine_bin), "chat-template", "--tokenizer", str(TOKENIZERS / "qwen3"), "--messages", str(msgs)],
                          capture_output=True, timeout=30)
    assert proc.returncode == 1
    assert proc.stderr.decode() == f"error: {msgs}: JSON nested too deeply\n"
    cases = tmp_path / "cases.jsonl"
    cases.write_text('{"template": "{{ x|length }}", "context": {"x": ' + deep + '}}\n{"template": "ok", "context": {}}\n')
    proc = subprocess.run([str(engine_bin), "chat-template", "--cases", str(cases)], capture_output=True, timeout=30)
    assert proc.returncode == 0
    first, second = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert first == {"ok": False, "error": f"{cases}:1: JSON nested too deeply"}
    assert second == {"ok": True, "text": "ok"}
