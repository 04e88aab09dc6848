"""Multi-adapter serving against peft's references (tests/fixtures/adapters/<base>/<name>/reference.json, written
by scripts/make-fixtures.py): every fixture adapter through `lorax-engine generate --adapter DIR` and through
/generate (prefill log-probs within 1e-3, greedy tokens identical); 32 concurrent requests over all adapters of a
model plus the base model give each request its solo result while really sharing batches; with
--max-loaded-adapters 2 and 6 adapters in rotation every request succeeds with evictions counted, while a corrupt
adapter, a wrong-base adapter and a path escape are refused with clear 4xx errors."""
import json
import pathlib
import re
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

REPO = pathlib.Path(__file__).resolve().parents[2]
ADAPTERS = REPO / "tests" / "fixtures" / "adapters"
MODELS = REPO / "tests" / "fixtures" / "models"
FIXTURES = sorted(d for d in ADAPTERS.glob("*/*") if d.parent.name != "bad" and (d / "reference.json").exists())
BASES = sorted({d.parent.name for d in FIXTURES})


def ref_of(folder):
    return json.loads((folder / "reference.json").read_text())


def check(details, case, where):
    assert [t["id"] for t in details["prefill"]] == case["input_ids"], where
    assert details["prefill"][0]["logprob"] is None
    for got, want in zip(details["prefill"][1:], case["prefill_logprobs"][1:]):
        assert got["logprob"] == pytest.approx(want, abs=1e-3), where
    assert [t["id"] for t in details["tokens"]] == case["greedy_ids"], where


def body(case, max_new, adapter=None, source=None):
    p = {"max_new_tokens": max_new, "ignore_eos_token": True, "decoder_input_details": True, "details": True}
    if adapter:
        p["adapter_id"] = adapter
    if source:
        p["adapter_source"] = source
    return {"inputs": case["prompt"], "parameters": p}


def metric(text, name, labels=""):
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


@pytest.mark.skipif(not FIXTURES, reason="no fixture adapters")
@pytest.mark.parametrize("folder", FIXTURES, ids=lambda d: f"{d.parent.name}-{d.name}")
def test_cli_adapter_matches_peft(engine_bin, folder):
    ref = ref_of(folder)
    for case in ref["cases"]:
        out = subprocess.run([str(engine_bin), "generate", "--model", str(MODELS / folder.parent.name), "--threads", "1",
                              "--prompt", case["prompt"], "--adapter", str(folder.relative_to(REPO)), "--json",
                              "--ignore-eos-token", "--max-new-tokens", str(ref["max_new_tokens"])],
                             cwd=REPO, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        check(json.loads(out.stdout)["details"], case, f"{folder.name}: {case['prompt']}")


def test_cli_refuses_bad_adapters_clearly(engine_bin):
    for name, words in [("truncated", "truncated"), ("wrong-shape", "wrong base model")]:
        out = subprocess.run([str(engine_bin), "generate", "--model", str(MODELS / "llama"), "--prompt", "x",
                              "--adapter", str(ADAPTERS / "bad" / name)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 1 and words in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    # A name under --adapter-dir works too; an unknown name says so.
    out = subprocess.run([str(engine_bin), "generate", "--model", str(MODELS / "llama"), "--prompt", "x",
                          "--adapter-dir", str(ADAPTERS / "llama"), "--adapter", "no-such"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1 and "not found" in out.stderr, out.stderr


@pytest.mark.skipif(not BASES, reason="no fixture adapters")
@pytest.mark.parametrize("base", BASES)
def test_server_adapters_match_peft(start_server, base):
    folders = [d for d in FIXTURES if d.parent.name == base]
    s = start_server("--adapter-dir", ADAPTERS / base, "--max-total-tokens", "120", "--max-input-length", "100",
                     model=MODELS / base)
    jobs = [(d.name, case, ref_of(d)["max_new_tokens"]) for d in folders for case in ref_of(d)["cases"]]

    def run(job):
        name, case, max_new = job
        r = requests.post(s.url + "/generate", json=body(case, max_new, name), timeout=120)
        assert r.status_code == 200, r.text
        return r.json()["details"]

    with ThreadPoolExecutor(8) as pool:
        for (name, case, _), details in zip(jobs, pool.map(run, jobs)):
            check(details, case, f"{name}: {case['prompt']}")
    listed = {a["adapter_id"]: a for a in requests.get(s.url + "/adapters", timeout=10).json()["adapters"]}
    assert set(listed) == {d.name for d in folders}
    models = {m["id"] for m in requests.get(s.url + "/v1/models", timeout=10).json()["data"]}
    assert {d.name for d in folders} <= models
    assert s.stop() == 0


def test_32_concurrent_requests_share_batches_and_match_solo(start_server):
    folders = [d for d in FIXTURES if d.parent.name == "llama"]
    s = start_server("--adapter-dir", ADAPTERS / "llama", "--max-total-tokens", "120", "--max-input-length", "100",
                     model=MODELS / "llama")
    pairs = [(None, c) for c in ref_of(MODELS / "llama")["cases"]]
    pairs += [(d.name, c) for d in folders for c in ref_of(d)["cases"]]
    jobs = [pairs[i % len(pairs)] for i in range(32)]

    # 60 new tokens each: long enough that requests arriving over a busy machine's spread still overlap.
    start = threading.Barrier(32)

    def run(job, together=False):
        name, case = job
        if together:
            start.wait(timeout=60)
        r = requests.post(s.url + "/generate", json=body(case, 60, name), timeout=120)
        assert r.status_code == 200, r.text
        return r.json()["details"]

    solo = {}
    for job in dict.fromkeys((n, c["prompt"]) for n, c in jobs):  # one at a time: nothing to share a batch with
        case = next(c for n, c in jobs if (n, c["prompt"]) == job)
        solo[job] = run((job[0], case))
    assert metric(s.metrics(), "lorax_batch_max_size") == 1
    with ThreadPoolExecutor(32) as pool:
        together = list(pool.map(lambda j: run(j, True), jobs))
    for (name, case), d in zip(jobs, together):
        want = solo[(name, case["prompt"])]
        assert [t["id"] for t in d["tokens"]] == [t["id"] for t in want["tokens"]], (name, case["prompt"])
        for a, b in zip(d["prefill"][1:] + d["tokens"], want["prefill"][1:] + want["tokens"]):
            assert a["logprob"] == pytest.approx(b["logprob"], abs=1e-4)
    text = s.metrics()
    assert metric(text, "lorax_batch_max_size") >= 8, "requests did not share batches"
    assert metric(text, "lorax_batch_max_adapters") >= 3, "adapters did not share batches"
    for d in folders:
        assert metric(text, "lorax_adapter_requests_total", f'{{adapter_id="{d.name}"}}') >= 1
    assert s.stop() == 0


def test_eviction_rotation_and_refusals(start_server, tmp_path):
    # Six adapters: copies of the llama fixtures under new names, each checked against its source's reference.
    sources = [d for d in FIXTURES if d.parent.name == "llama"]
    six = {}
    for i in range(6):
        src = sources[i % len(sources)]
        shutil.copytree(src, tmp_path / f"a{i}")
        six[f"a{i}"] = ref_of(src)
    s = start_server("--adapter-dir", tmp_path, "--adapter-root", ADAPTERS / "bad", "--max-loaded-adapters", "2",
                     "--max-active-adapters", "2", "--adapter-cycle-time-s", "0.01", "--max-total-tokens", "120",
                     "--max-input-length", "100", model=MODELS / "llama")
    good = [(name, ref["cases"][i % len(ref["cases"])], ref["max_new_tokens"])
            for i in range(3) for name, ref in six.items()]
    bad = [("tests/fixtures/adapters/bad/truncated", "local", 422, "truncated"),
           (str(ADAPTERS / "bad" / "wrong-shape"), "local", 422, "wrong base model"),
           ("../../etc", None, 403, "outside the allowed adapter roots"),
           (str(ADAPTERS / "llama" / ".." / ".." / ".." / ".." / "etc"), "local", 403, "outside the allowed adapter roots"),
           ("missing-one", None, 404, "not found")]

    def run_good(job):
        name, case, max_new = job
        r = requests.post(s.url + "/generate", json=body(case, max_new, name), timeout=120)
        assert r.status_code == 200, r.text
        check(r.json()["details"], case, f"{name}: {case['prompt']}")

    def run_bad(job):
        name, source, status, words = job
        r = requests.post(s.url + "/generate", json=body({"prompt": "The cat"}, 2, name, source), timeout=60)
        assert r.status_code == status and words in r.json()["error"], r.text
        assert r.json()["error_type"] == ("not_found" if status == 404 else "validation")

    for _ in range(2):  # twice, so loaded-then-evicted adapters are loaded again
        with ThreadPoolExecutor(12) as pool:
            futures = [pool.submit(run_good, j) for j in good] + [pool.submit(run_bad, j) for j in bad]
            for f in futures:
                f.result()
    text = s.metrics()
    assert metric(text, "lorax_adapter_evictions_total", '{tier="device"}') >= 1
    assert metric(text, "lorax_adapters_loaded", '{tier="device"}') <= 2
    assert metric(text, "lorax_adapter_load_failures_total") >= 2 * 3
    assert metric(text, "lorax_batch_max_adapters") <= 2
    # Admin: load, list, unload; unknown is 404.
    r = requests.post(s.url + "/adapters", json={"adapter_id": "a1"}, timeout=30)
    assert r.status_code == 200 and r.json()["tier"] == "device" and r.json()["rank"] >= 1, r.text
    r = requests.post(s.url + "/adapters", json={"adapter_id": "tests/fixtures/adapters/bad/truncated",
                                                 "adapter_source": "local"}, timeout=30)
    assert r.status_code == 422, r.text
    assert requests.delete(s.url + "/adapters/a1", timeout=10).status_code == 200
    assert requests.delete(s.url + "/adapters/a1", timeout=10).status_code == 404
    assert "a1" not in {a["adapter_id"] for a in requests.get(s.url + "/adapters", timeout=10).json()["adapters"]}
    assert s.stop() == 0


def test_unload_of_adapter_in_use_is_409(start_server):
    s = start_server("--adapter-dir", ADAPTERS / "llama", "--max-total-tokens", "120", "--max-input-length", "100",
                     model=MODELS / "llama")
    case = ref_of(ADAPTERS / "llama" / "attn-r8")["cases"][0]
    seen = []
    with ThreadPoolExecutor(32) as pool:
        futures = [pool.submit(requests.post, s.url + "/generate", json=body(case, 100, "attn-r8"), timeout=120)
                   for _ in range(32)]
        while not all(f.done() for f in futures) and 409 not in seen:
            listed = requests.get(s.url + "/adapters", timeout=10).json()["adapters"]
            if listed and listed[0]["in_use"]:
                r = requests.delete(s.url + "/adapters/attn-r8", timeout=10)
                seen.append(r.status_code)
                assert r.status_code != 409 or "in use" in r.json()["error"], r.text
            time.sleep(0.002)
        assert all(f.result().status_code == 200 for f in futures)
    assert 409 in seen, seen
    assert requests.delete(s.url + "/adapters/attn-r8", timeout=10).status_code == 200
    assert s.stop() == 0


def test_openai_model_names_an_adapter(start_server):
    import openai
    s = start_server("--adapter-dir", ADAPTERS / "llama", model=MODELS / "llama")
    case = ref_of(ADAPTERS / "llama" / "attn-r8")["cases"][0]
    client = openai.OpenAI(base_url=s.url + "/v1", api_key="unused")
    r = client.completions.create(model="attn-r8", prompt=case["prompt"], max_tokens=4, temperature=0)
    lorax = requests.post(s.url + "/generate", json=body(case, 4, "attn-r8"), timeout=60).json()
    assert r.choices[0].text == lorax["generated_text"]
    assert "attn-r8" in [m.id for m in client.models.list().data]
    assert s.stop() == 0
