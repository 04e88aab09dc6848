"""Per-request adapter merging (LoRAX `merged_adapters`) through lorax-client: every merge case of
tests/fixtures/merges/llama (peft's add_weighted_adapter in float64, scripts/make-merge-references.py) gives peft's
prefill log-probs within 1e-3 and its greedy tokens; a merge is built once and then served as an adapter of its own
(listed, cached by its parameters); bad merges are clear errors, never a crash."""
import json
import pathlib

import lorax
import pytest
import requests
from lorax.types import MergedAdapters

REPO = pathlib.Path(__file__).resolve().parents[2]
LLAMA = REPO / "tests" / "fixtures" / "models" / "llama"
SOURCES = REPO / "tests" / "fixtures" / "adapters" / "llama"
CASES = sorted((REPO / "tests" / "fixtures" / "merges" / "llama").glob("*/reference.json"))


@pytest.fixture(scope="module")
def srv(start_server):
    return start_server("--adapter-root", SOURCES, "--max-total-tokens", "120", "--max-input-length", "100",
                        model=LLAMA)


def merged(m):
    return MergedAdapters(ids=[str(SOURCES / i) for i in m["ids"]], weights=m["weights"],
                          merge_strategy=m["merge_strategy"], density=m.get("density", 1.0),
                          majority_sign_method=m.get("majority_sign_method"))


@pytest.mark.parametrize("case", CASES, ids=[c.parent.name for c in CASES])
def test_merge_matches_peft(srv, case):
    ref = json.loads(case.read_text())
    client = lorax.Client(srv.url, timeout=60)
    for c in ref["cases"]:
        r = client.generate(c["prompt"], merged_adapters=merged(ref["merge"]), adapter_source="local",
                            max_new_tokens=ref["max_new_tokens"], ignore_eos_token=True, decoder_input_details=True)
        assert [t.id for t in r.details.prefill] == c["input_ids"]
        for got, want in zip(r.details.prefill[1:], c["prefill_logprobs"][1:]):
            assert got.logprob == pytest.approx(want, abs=1e-3)
        assert [t.id for t in r.details.tokens] == c["greedy_ids"], c["prompt"]


def test_a_merge_is_built_once_and_listed(srv):
    ref = json.loads(CASES[0].read_text())
    client = lorax.Client(srv.url, timeout=60)

    def merges():
        listed = requests.get(srv.url + "/adapters", timeout=10).json()["adapters"]
        return {a["adapter_id"]: a for a in listed if a["adapter_source"] == "merge"}

    before = merges()
    for _ in range(2):
        client.generate("Hello", merged_adapters=merged(ref["merge"]), adapter_source="local", max_new_tokens=2)
    after = merges()
    assert len(set(after) - set(before)) <= 1 and after, after  # built by the first request (or an earlier test)
    assert all(i.startswith("merged-") and a["rank"] == 8 for i, a in after.items())
    # Other weights are another adapter.
    other = dict(ref["merge"], weights=[w * 0.5 for w in ref["merge"]["weights"]])
    client.generate("Hello", merged_adapters=merged(other), adapter_source="local", max_new_tokens=2)
    assert len(merges()) == len(after) + 1


def post(srv, merged_adapters, **params):
    return requests.post(srv.url + "/generate", json={"inputs": "Hello", "parameters": {
        "merged_adapters": merged_adapters, "adapter_source": "local", "max_new_tokens": 2, **params}}, timeout=60)


A, B = str(SOURCES / "merge-a"), str(SOURCES / "merge-b")


@pytest.mark.parametrize("m,status,words", [
    ({"ids": [A, B], "weights": [1.0]}, 422, "weights"),
    ({"ids": [], "weights": []}, 422, "ids"),
    ({"ids": [A, B], "weights": [1, 1], "merge_strategy": "svd"}, 422, "merge_strategy"),
    ({"ids": [A, B], "weights": [1, 1], "merge_strategy": "ties"}, 422, "density"),
    ({"ids": [A, B], "weights": [1, 1], "merge_strategy": "ties", "density": 0}, 422, "density"),
    ({"ids": [A, B], "weights": [1, 1], "merge_strategy": "ties", "density": 0.5, "majority_sign_method": "x"}, 422,
     "majority_sign_method"),
    ({"ids": [A, str(SOURCES / "all-r4-patterns")], "weights": [1, 1]}, 422, "rank"),
    ({"ids": [A, str(SOURCES / "no-such-adapter")], "weights": [1, 1]}, 404, ""),
    ({"ids": [A], "weights": [1], "extra": 1}, 422, "extra"),
    ("not an object", 422, "merged_adapters"),
])
def test_bad_merges_are_clear_errors(srv, m, status, words):
    r = post(srv, m)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


def test_merge_and_adapter_id_together_are_refused(srv):
    r = post(srv, {"ids": [A], "weights": [1]}, adapter_id=A)
    assert r.status_code == 422 and "adapter_id" in r.json()["error"]
    assert requests.get(srv.url + "/health", timeout=10).status_code == 200
