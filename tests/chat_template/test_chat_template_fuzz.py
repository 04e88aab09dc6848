"""Randomised differential tests against Python jinja2: whitespace control
(trim_blocks/lstrip_blocks/-/+ modifiers, comments, raw), expressions
(operators, filters, tests, methods, subscripts) and statements (nested
for/if/set/namespace/macro/call/filter blocks, break/continue, for-else). Seeds are fixed so runs are
reproducible; each test starts lorax-engine once in batch mode."""
import copy
import random

import pytest

from ct_jinja_reference import render
from test_chat_template_parity import run_cases

TEXT = ["\n", "  ", "\t", "x", " y ", "\n  ", "  \n", "\n\n", "z\n", "\r\n"]


def _tag(rng, body):
    return "{%" + rng.choice(["", "", "-", "+"]) + rng.choice(["", " "]) + body + rng.choice([" ", ""]) + rng.choice(["", "", "-", "+"]) + "%}"


def _ws_template(rng, depth=0, count=None):
    out = []
    for _ in range(count or rng.randint(1, 8)):
        r = rng.random()
        if r < 0.45:
            out.append(rng.choice(TEXT))
        elif r < 0.6:
            out.append("{{" + rng.choice(["", "-"]) + " " + rng.choice(["'v'", "x", "1"]) + " " + rng.choice(["", "-"]) + "}}")
        elif r < 0.68:
            out.append("{#" + rng.choice(["", "-"]) + " c " + rng.choice(["", "-", "+"]) + "#}")
        elif r < 0.74:
            out.append(_tag(rng, "set q = 1"))
        elif depth < 3 and r < 0.87:
            if rng.random() < 0.5:
                other = _tag(rng, "else") + _ws_template(rng, depth + 1) if rng.random() < 0.3 else ""
                out.append(_tag(rng, "if true") + _ws_template(rng, depth + 1) + other + _tag(rng, "endif"))
            else:
                out.append(_tag(rng, "for i in [1, 2]") + _ws_template(rng, depth + 1) + _tag(rng, "endfor"))
        elif r < 0.92:
            out.append("{%" + rng.choice(["", "-", "+"]) + " raw " + rng.choice(["", "-"]) + "%}" + rng.choice(TEXT) + "{{ r }}"
                       + rng.choice(TEXT) + "{%" + rng.choice(["", "-", "+"]) + " endraw " + rng.choice(["", "-", "+"]) + "%}")
        else:
            out.append(rng.choice(TEXT))
    return "".join(out)


CTX = {"s": "Hello, Wörld! 😀 ", "n": 7, "f": 2.5, "neg": -3, "l": [3, 1, 2], "sl": ["b", "a", "C"], "d": {"b": 1, "a": [1, 2], "c": None},
       "e": "", "z": 0, "t": True, "no": None,
       "msgs": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": " yo "}]}
LITS = ["1", "0", "-2", "2.5", "0.1", "'ab'", "''", "'a b c'", "\"x'y\"", "true", "false", "none", "[1, 2]", "[]", "['x', 'y']",
        "{'k': 1}", "(1, 'a')", "3.0", "1e3", "'\\n'"]
VARS = list(CTX) + ["missing"]
BINOPS = ["+", "-", "*", "/", "//", "%", "~", "==", "!=", "<", ">", "<=", ">=", "in", "not in", "and", "or", "**"]
# Filters that return generators in jinja2 are always consumed with |list, as templates do.
FILTERS = ["length", "first", "last", "upper", "lower", "trim", "join", "join(', ')", "list", "sort", "string", "int", "float", "abs",
           "round", "round(1)", "default('D')", "default('D', true)", "tojson", "reverse|list", "unique|list", "sum", "min", "max",
           "items|list", "dictsort", "title", "capitalize", "count", "replace('a', 'X')", "select|list", "reject|list",
           "map('string')|list", "map(attribute='role')|list", "selectattr('role', 'equalto', 'user')|list", "indent(2)", "wordcount",
           "batch(2)|list", "center(10)", "truncate(8)", "format(1)", "tojson(indent=1)", "first|string", "list|length", "escape|string"]
TESTS = ["defined", "undefined", "none", "string", "number", "integer", "float", "mapping", "iterable", "sequence", "boolean", "true",
         "false", "even", "odd", "divisibleby 2", "in [1, 'ab']", "eq 1", "gt 1", "lower", "upper", "callable", "sameas none"]
METHODS = ["strip()", "lstrip()", "rstrip('! ')", "split()", "split(',')", "upper()", "lower()", "title()", "replace('l', 'L')",
           "startswith('He')", "endswith(' ')", "find('o')", "count('l')", "items()|list", "keys()|list", "values()|list", "get('a')",
           "get('zz', 5)", "index(1)", "capitalize()", "splitlines()", "isdigit()"]
SUBSCRIPTS = ["[0]", "[-1]", "['a']", ".role", ".a", "[5]"]
SLICES = ["[1:]", "[::-1]", "[:2]"]


def _expr(rng, depth=0):
    r = rng.random()
    if depth > 3 or r < 0.25:
        return rng.choice(LITS + VARS + VARS)
    if r < 0.45:
        return "(" + _expr(rng, depth + 1) + " " + rng.choice(BINOPS) + " " + _expr(rng, depth + 1) + ")"
    if r < 0.6:
        return _expr(rng, depth + 1) + "|" + rng.choice(FILTERS)
    if r < 0.67:
        return "(" + _expr(rng, depth + 1) + " is " + rng.choice(["", "not "]) + rng.choice(TESTS) + ")"
    if r < 0.75:
        return rng.choice(VARS) + "." + rng.choice(METHODS)
    if r < 0.82:
        # Slices only on names: jinja2 constant-folds literal slices differently.
        return (_expr(rng, depth + 1) + rng.choice(SUBSCRIPTS)) if rng.random() < 0.6 else rng.choice(VARS) + rng.choice(SLICES)
    if r < 0.88:
        return "(" + _expr(rng, depth + 1) + " if " + _expr(rng, depth + 1) + " else " + _expr(rng, depth + 1) + ")"
    if r < 0.93:
        return rng.choice(["not ", "-"]) + _expr(rng, depth + 1)
    return "[" + _expr(rng, depth + 1) + ", " + _expr(rng, depth + 1) + "]"


def _compare(engine_bin, tmp_path, templates, ctx):
    results = run_cases(engine_bin, tmp_path, [{"template": t, "context": ctx} for t in templates])
    mismatches = []
    for template, got in zip(templates, results):
        kind, value = render(template, copy.deepcopy(ctx))  # some jinja2 filters mutate their input
        same = (kind == "ok" and got["ok"] and got["text"] == value) or (kind == "raised" and got.get("error") == value) or \
               (kind == "error" and not got["ok"])
        if not same:
            mismatches.append((template, kind, value, got))
    assert not mismatches, "\n".join(f"{t!r}: jinja2 {k} {v!r}, lorax {g}" for t, k, v, g in mismatches[:10])


@pytest.mark.parametrize("seed", [1, 2])
def test_random_whitespace_control_matches_jinja2(engine_bin, tmp_path, seed):
    rng = random.Random(seed)
    _compare(engine_bin, tmp_path, [_ws_template(rng, 0, rng.randint(2, 10)) for _ in range(300)], {"x": "X"})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_expressions_match_jinja2(engine_bin, tmp_path, seed):
    rng = random.Random(seed)
    _compare(engine_bin, tmp_path, ["{{ " + _expr(rng) + " }}" for _ in range(400)], CTX)


STMT_EXPRS = ["a", "b", "i", "x", "loop.index", "loop.first", "loop.last", "loop.length", "loop.revindex", "loop.previtem",
              "loop.nextitem", "ns.v", "ns.n", "1", "'s'", "a ~ b", "(a or 0) + 1", "x is defined", "items|length", "m.role", "k", "v",
              "loop.index0 % 2 == 0", "varargs", "kwargs", "caller is defined"]
STMT_LISTS = ["[1, 2, 3]", "items", "'ab'", "[]", "d.items()", "range(3)", "msgs", "[[1, 2], [3, 4]]"]
STMT_CTX = {"items": [3, 1, 2], "d": {"p": 1, "q": 2}, "msgs": [{"role": "user"}, {"role": "assistant"}], "a": 10}


def _stmts(rng, depth, in_loop):
    out = []
    for _ in range(rng.randint(1, 4)):
        r = rng.random()
        if r < 0.25:
            out.append("{{ " + rng.choice(STMT_EXPRS) + " }}")
        elif r < 0.35:
            out.append(rng.choice(["\n", " ", "-", "\n  "]))
        elif r < 0.47:
            out.append("{% set " + rng.choice(["a", "b", "c", "i", "x"]) + " = " + rng.choice(STMT_EXPRS) + " %}")
        elif r < 0.53:
            out.append("{% set ns." + rng.choice(["v", "n"]) + " = " + rng.choice(STMT_EXPRS) + " %}")
        elif r < 0.58 and in_loop:
            out.append(rng.choice(["{% break %}", "{% continue %}", "{% if loop.index > 1 %}{% break %}{% endif %}",
                                   "{% if loop.first %}{% continue %}{% endif %}"]))
        elif depth < 3 and r < 0.72:
            cond = rng.choice(["", "", " if " + rng.choice(STMT_EXPRS)])
            other = rng.choice(["", "", "{% else %}E" + _stmts(rng, depth + 1, False)])
            out.append("{% for " + rng.choice(["i", "x", "m", "k, v", "a, b"]) + " in " + rng.choice(STMT_LISTS) + cond + " %}"
                       + _stmts(rng, depth + 1, True) + other + "{% endfor %}")
        elif depth < 3 and r < 0.84:
            out.append("{% if " + rng.choice(STMT_EXPRS) + " %}" + _stmts(rng, depth + 1, in_loop)
                       + rng.choice(["", "{% elif " + rng.choice(STMT_EXPRS) + " %}" + _stmts(rng, depth + 1, in_loop)])
                       + rng.choice(["", "{% else %}" + _stmts(rng, depth + 1, in_loop)]) + "{% endif %}")
        elif depth < 3 and r < 0.88:
            out.append("{% set " + rng.choice(["a", "b", "x"]) + " %}" + _stmts(rng, depth + 1, False) + "{% endset %}")
        elif depth < 3 and r < 0.91:
            out.append("{% filter upper %}" + _stmts(rng, depth + 1, in_loop) + "{% endfilter %}")
        elif r < 0.96:
            out.append("{{ mac(" + rng.choice(["", "1", "1, 2", "b=5", "1, 2, 3", "x", "a=9", "1, c=3"]) + ") }}")
        else:
            out.append("{% call mac(" + rng.choice(["", "1"]) + ") %}" + _stmts(rng, depth + 1, False) + "{% endcall %}")
    return "".join(out)


def _stmt_template(rng):
    body = _stmts(rng, 2, False)
    if "mac(" in body:
        body = "C"
    macro = "{% macro mac(a, b=2) %}[" + body + "{{ caller() if caller is defined }}]{% endmacro %}"
    return "{% set ns = namespace(v=0, n='') %}" + macro + _stmts(rng, 0, False)


@pytest.mark.parametrize("seed", [1, 2])
def test_random_statements_match_jinja2(engine_bin, tmp_path, seed):
    rng = random.Random(seed)
    _compare(engine_bin, tmp_path, [_stmt_template(rng) for _ in range(300)], STMT_CTX)


# A second statement generator: with-blocks, nested macros, call blocks with
# caller arguments, tuple assignment, filtered set blocks, loop.cycle/changed.
STMT2_EXPRS = ["a", "b", "i", "x", "y", "loop.index", "loop.cycle('p', 'q')", "loop.changed(i)", "ns.v", "1", "'s'", "a ~ b",
               "x is defined", "m", "k ~ v", "(y or 0) + 1", "caller is defined", "t", "t|length", "w", "[a, b]|join(',')"]
STMT2_PRE = ("{% set ns = namespace(v=0) %}"
             "{% macro mac2(a, b=2) %}[{{ a }}{{ b }}{{ caller(a) if caller is defined }}]{% endmacro %}")
STMT2_CTX = {"t": [3, 1, 2], "d": {"p": 1, "q": 2}, "a": 10, "w": "W"}


def _stmts2(rng, depth, in_loop):
    out = []
    ex = lambda: rng.choice(STMT2_EXPRS)  # noqa: E731
    for _ in range(rng.randint(1, 4)):
        r = rng.random()
        if r < 0.25:
            out.append("{{ " + ex() + " }}")
        elif r < 0.32:
            out.append(rng.choice(["\n", " ", "|"]))
        elif r < 0.42:
            out.append("{% set " + rng.choice(["a", "b", "x", "y"]) + " = " + ex() + " %}")
        elif r < 0.46:
            out.append("{% set a, b = " + rng.choice(["[1, 2]", "'xy'", "(b, a)"]) + " %}")
        elif r < 0.50:
            out.append("{% set ns.v = " + ex() + " %}")
        elif r < 0.53 and in_loop:
            out.append(rng.choice(["{% break %}", "{% continue %}"]))
        elif depth < 3 and r < 0.63:
            out.append("{% for " + rng.choice(["i", "x", "k, v", "m"]) + " in "
                       + rng.choice(["[1, 2]", "t", "'ab'", "d.items()", "[]", "range(2)"]) + rng.choice(["", " if " + ex()]) + " %}"
                       + _stmts2(rng, depth + 1, True) + rng.choice(["", "{% else %}E" + _stmts2(rng, depth + 1, False)]) + "{% endfor %}")
        elif depth < 3 and r < 0.73:
            out.append("{% if " + ex() + " %}" + _stmts2(rng, depth + 1, in_loop)
                       + rng.choice(["", "{% else %}" + _stmts2(rng, depth + 1, in_loop)]) + "{% endif %}")
        elif depth < 3 and r < 0.77:
            out.append("{% with " + rng.choice(["a = 5", "y = a, x = 2", "w = b"]) + " %}" + _stmts2(rng, depth + 1, in_loop) + "{% endwith %}")
        elif depth < 3 and r < 0.81:
            out.append("{% macro mm(p, q='Q') %}<{{ p }}{{ q }}" + _stmts2(rng, 3, False) + "{{ caller() if caller is defined }}>{% endmacro %}"
                       + "{{ mm(" + rng.choice(["1", "a", "x, 2", "q=3, p=4"]) + ") }}")
        elif depth < 3 and r < 0.85:
            out.append("{% call(z) mac2(" + rng.choice(["1", "a"]) + ") %}{{ z }}" + _stmts2(rng, depth + 1, False) + "{% endcall %}")
        elif depth < 3 and r < 0.88:
            out.append("{% set " + rng.choice(["a", "y"]) + " | " + rng.choice(["upper", "trim", "length"]) + " %} "
                       + _stmts2(rng, depth + 1, False) + " {% endset %}")
        elif depth < 3 and r < 0.91:
            out.append("{% filter " + rng.choice(["upper", "trim", "replace('1', 'one')"]) + " %}" + _stmts2(rng, depth + 1, in_loop)
                       + "{% endfilter %}")
        else:
            out.append("{{ mac2(" + rng.choice(["1", "a", "b=5", "2, 3"]) + ") }}")
    return "".join(out)


def test_random_blocks_and_macros_match_jinja2(engine_bin, tmp_path):
    rng = random.Random(1)
    _compare(engine_bin, tmp_path, [STMT2_PRE + _stmts2(rng, 0, False) for _ in range(300)], STMT2_CTX)
