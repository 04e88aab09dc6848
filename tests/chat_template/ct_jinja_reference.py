"""Reference renderer: Python jinja2 set up the way Hugging Face transformers
renders chat templates (re-implemented here from its documented behaviour):
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with the
loopcontrols extension, a `generation` block that renders its body unchanged,
a tojson filter that calls json.dumps(ensure_ascii=False, ...) and the
raise_exception / strftime_now globals."""
import json
from datetime import datetime

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment


class GenerationBlock(Extension):
    """`{% generation %}...{% endgeneration %}` renders its body as-is."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_render_body"), [], [], body).set_lineno(lineno)

    def _render_body(self, caller):
        return caller()


class RaisedByTemplate(Exception):
    pass


def _raise_exception(message):
    raise RaisedByTemplate(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt):
    return datetime.now().strftime(fmt)


def make_env():
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationBlock, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


ENV = make_env()


def render(template, context):
    """Returns ("ok", text), ("raised", message) for raise_exception, or ("error", repr)."""
    try:
        return "ok", ENV.from_string(template).render(**context)
    except RaisedByTemplate as e:
        return "raised", str(e)
    except Exception as e:  # noqa: BLE001 - any jinja2 failure is a reference outcome
        return "error", f"{type(e).__name__}: {e}"


def special_tokens(config):
    """The special tokens transformers passes to the template (unset ones are left out)."""
    out = {}
    for key in ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"):
        v = config.get(key)
        if isinstance(v, dict):
            v = v.get("content")
        if isinstance(v, str):
            out[key] = v
    extra = config.get("additional_special_tokens")
    if isinstance(extra, list):
        out["additional_special_tokens"] = [
            t["content"] if isinstance(t, dict) else t for t in extra if isinstance(t, (str, dict))
        ]
    return out


def base_context(config):
    ctx = {"messages": [], "tools": None, "documents": None, "add_generation_prompt": False}
    ctx.update(special_tokens(config))
    return ctx
