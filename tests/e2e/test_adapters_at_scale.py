"""Adapters at scale through the real server (CPU backend, the llama fixture and peft's references):
- a request for an adapter whose source stalls (a loopback HTTP server that holds its answer) waits off the HTTP
  threads: base-model and resident-adapter requests, and /health, keep being answered while it loads, and it
  completes with peft's result once the source answers;
- 200 requests over 50 adapters with --max-loaded-adapters 4 all give their solo results, while requests for a
  corrupt adapter among them fail alone with a 422;
- an adapter a running request uses stays on the device (lorax_adapter_loaded{tier="device"} sampled throughout)
  while the others churn through the device tier;
- the per-adapter metrics a LoRA-aware router reads, and refusals: an adapter larger than the host byte budget."""
import json
import pathlib
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from test_adapters import body, ref_of
from test_adapters_sources import FileServer

REPO = pathlib.Path(__file__).resolve().parents[2]
ADAPTERS = REPO / "tests" / "fixtures" / "adapters"
MODELS = REPO / "tests" / "fixtures" / "models"
SOURCES = sorted(d for d in (ADAPTERS / "llama").iterdir() if (d / "reference.json").exists())


def sample(text, name, labels):
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def generate(prompt, max_new, adapter=None, source=None):
    return body({"prompt": prompt}, max_new, adapter, source)


def check_against(details, case):
    assert [t["id"] for t in details["prefill"]] == case["input_ids"]
    for got, want in zip(details["prefill"][1:], case["prefill_logprobs"][1:]):
        assert got["logprob"] == pytest.approx(want, abs=1e-3)
    assert [t["id"] for t in details["tokens"]] == case["greedy_ids"]


def test_a_stalled_adapter_load_delays_no_one_else(start_server, tmp_path):
    slow_src = SOURCES[0]
    gate = threading.Event()
    files = FileServer(gate)
    slow_url = f"{files.url}/files/llama/{slow_src.name}/"
    try:
        s = start_server("--adapter-dir", ADAPTERS / "llama", "--adapter-cache-dir", tmp_path / "cache",
                         "--adapter-url-allow", files.url.split("//")[1], "--http-threads", "2", "--max-total-tokens", "120", "--max-input-length", "100",
                         model=MODELS / "llama")
        resident = SOURCES[1].name
        rcase = ref_of(SOURCES[1])["cases"][0]
        r = requests.post(s.url + "/generate", json=generate(rcase["prompt"], 4, resident), timeout=60)
        assert r.status_code == 200, r.text
        scase = ref_of(slow_src)["cases"][0]
        slow_max = ref_of(slow_src)["max_new_tokens"]
        pool = ThreadPoolExecutor(6)
        # More stalled requests than HTTP threads: none of them may hold one.
        slow = [pool.submit(requests.post, s.url + "/generate", json=generate(scase["prompt"], slow_max, slow_url, "url"),
                            timeout=120) for _ in range(6)]
        deadline = time.time() + 30
        while not files.log and time.time() < deadline:
            time.sleep(0.01)
        assert files.log, "the load never reached the source"
        base_case = ref_of(MODELS / "llama")["cases"][0]
        for _ in range(3):
            t0 = time.time()
            assert requests.get(s.url + "/health", timeout=5).status_code == 200
            r = requests.post(s.url + "/generate", json=generate(base_case["prompt"], 8), timeout=10)
            assert r.status_code == 200, r.text
            r = requests.post(s.url + "/generate", json=generate(rcase["prompt"], 8, resident), timeout=10)
            assert r.status_code == 200, r.text
            assert time.time() - t0 < 5, "base and resident-adapter requests waited for the stalled load"
        assert not any(f.done() for f in slow), "the stalled requests finished before their source answered"
        text = requests.get(s.url + "/metrics", timeout=5).text
        waiting = sample(text, "lorax_adapter_requests_waiting", '{adapter_id="' + slow_url + '"}')
        assert waiting == 6, text
        gate.set()
        for f in slow:
            r = f.result(timeout=60)
            assert r.status_code == 200, r.text
            check_against(r.json()["details"], scase)
        assert len(files.log) == 2, "one load for six requests (two files)"
        assert s.stop() == 0
    finally:
        gate.set()
        files.httpd.shutdown()


def test_200_requests_over_50_adapters_in_4_device_slots(start_server, tmp_path):
    # 50 ids, each a folder of links to one of the fixture adapters; two ids point at a corrupt file.
    names = {}
    for i in range(50):
        src = SOURCES[i % len(SOURCES)]
        d = tmp_path / f"ad{i:02d}"
        d.mkdir()
        for f in ("adapter_config.json", "adapter_model.safetensors"):
            (d / f).symlink_to(src / f)
        names[d.name] = src
    for bad in ("broken-a", "broken-b"):
        d = tmp_path / bad
        d.mkdir()
        (d / "adapter_config.json").symlink_to(ADAPTERS / "bad" / "truncated" / "adapter_config.json")
        (d / "adapter_model.safetensors").symlink_to(ADAPTERS / "bad" / "truncated" / "adapter_model.safetensors")
    # RoPE runs past the fixture's 128 positions: room for one long request that outlives the churn.
    s = start_server("--adapter-dir", tmp_path, "--adapter-root", ADAPTERS, "--max-loaded-adapters", "4", "--adapter-cycle-time-s", "0.05",
                     "--max-total-tokens", "3000", "--max-input-length", "100", "--max-waiting-requests", "512",
                     model=MODELS / "llama")
    # Solo results: one request at a time per (source adapter, prompt).
    solo = {}
    for src in SOURCES:
        for case in ref_of(src)["cases"]:
            name = next(n for n, v in names.items() if v == src)
            r = requests.post(s.url + "/generate", json=generate(case["prompt"], ref_of(src)["max_new_tokens"], name),
                              timeout=60)
            assert r.status_code == 200, r.text
            solo[(src.name, case["prompt"])] = r.json()["details"]
            check_against(r.json()["details"], case)
    jobs = []
    for i in range(200):
        name = f"ad{(i * 7) % 50:02d}"
        case = ref_of(names[name])["cases"][i % len(ref_of(names[name])["cases"])]
        jobs.append((name, case))
    bad_jobs = [("broken-a" if i % 2 else "broken-b") for i in range(10)]

    # A long request on one adapter runs throughout; its device residency is sampled all along.
    long_name = "ad49"
    long_case = ref_of(names[long_name])["cases"][0]
    watched = {"samples": [], "stop": False}

    def watch():
        while not watched["stop"]:
            text = requests.get(s.url + "/metrics", timeout=10).text
            watched["samples"].append((sample(text, "lorax_adapter_loaded", f'{{adapter_id="{long_name}",tier="device"}}'),
                                       sample(text, "lorax_adapter_requests_running", f'{{adapter_id="{long_name}"}}')))
            time.sleep(0.02)

    def run(job):
        name, case = job
        r = requests.post(s.url + "/generate", json=generate(case["prompt"], ref_of(names[name])["max_new_tokens"], name),
                          timeout=300)
        assert r.status_code == 200, (name, r.text)
        return name, case, r.json()["details"]

    def run_bad(name):
        r = requests.post(s.url + "/generate", json=generate("The cat", 4, name), timeout=300)
        assert r.status_code == 422 and "truncated" in r.json()["error"], r.text
        return name

    with ThreadPoolExecutor(48) as pool:
        long_f = pool.submit(requests.post, s.url + "/generate", json=generate(long_case["prompt"], 2800, long_name),
                             timeout=300)
        while True:  # the long request is running before the churn starts
            text = requests.get(s.url + "/metrics", timeout=10).text
            if sample(text, "lorax_adapter_requests_running", f'{{adapter_id="{long_name}"}}') == 1:
                break
            time.sleep(0.01)
        watcher = threading.Thread(target=watch)
        watcher.start()
        futures = [pool.submit(run, j) for j in jobs] + [pool.submit(run_bad, b) for b in bad_jobs]
        results = [f.result() for f in futures]
        r = long_f.result()
        watched["stop"] = True
        watcher.join()
    assert r.status_code == 200, r.text
    for res in results:
        if isinstance(res, str):
            continue
        name, case, d = res
        want = solo[(names[name].name, case["prompt"])]
        assert [t["id"] for t in d["tokens"]] == [t["id"] for t in want["tokens"]], name
        for a, b in zip(d["prefill"][1:] + d["tokens"], want["prefill"][1:] + want["tokens"]):
            assert a["logprob"] == pytest.approx(b["logprob"], abs=1e-4)
    while_running = [loaded for loaded, running in watched["samples"] if running == 1]
    assert len(while_running) >= 5, watched["samples"]
    assert all(v == 1 for v in while_running), f"{long_name} left the device while it ran: {watched['samples']}"
    text = s.metrics()
    assert sample(text, "lorax_adapter_evictions_total", '{tier="device"}') >= 20, "no churn: the test proves nothing"
    assert sample(text, "lorax_adapters_loaded", '{tier="device"}') <= 4
    assert sample(text, "lorax_batch_max_adapters", "") <= 4
    assert sample(text, "lorax_max_gpu_adapters", "") == 4
    assert sample(text, "lorax_adapter_load_failures_total", "") >= 2
    assert sample(text, "lorax_adapter_load_duration_count", '{tier="host"}') >= 50
    assert s.stop() == 0


def test_adapter_metrics_and_byte_budget(start_server):
    s = start_server("--adapter-dir", ADAPTERS / "llama", "--max-host-adapter-bytes", "4096", model=MODELS / "llama")
    r = requests.post(s.url + "/generate", json=generate("The cat", 2, SOURCES[0].name), timeout=60)
    assert r.status_code == 422 and "--max-host-adapter-bytes" in r.json()["error"], r.text
    assert s.stop() == 0
    s = start_server("--adapter-dir", ADAPTERS / "llama", "--max-loaded-adapters", "1", model=MODELS / "llama")
    for src in SOURCES[:2]:
        assert requests.post(s.url + "/generate", json=generate("The cat", 2, src.name), timeout=60).status_code == 200
    text = s.metrics()
    # The second adapter took the only device slot; the first waits in the host tier.
    assert sample(text, "lorax_adapter_loaded", f'{{adapter_id="{SOURCES[1].name}",tier="device"}}') == 1
    assert sample(text, "lorax_adapter_loaded", f'{{adapter_id="{SOURCES[0].name}",tier="host"}}') == 1
    assert sample(text, "lorax_adapter_loaded", f'{{adapter_id="{SOURCES[0].name}",tier="device"}}') is None
    assert sample(text, "lorax_adapter_load_duration_count", '{tier="device"}') == 2
    listed = {a["adapter_id"]: a for a in requests.get(s.url + "/adapters", timeout=10).json()["adapters"]}
    assert listed[SOURCES[0].name]["tier"] == "host" and listed[SOURCES[1].name]["tier"] == "device"
    # Unloading drops its residency series.
    assert requests.delete(s.url + f"/adapters/{SOURCES[0].name}", timeout=10).status_code == 200
    text = s.metrics()
    for tier in ("device", "host"):
        assert sample(text, "lorax_adapter_loaded", f'{{adapter_id="{SOURCES[0].name}",tier="{tier}"}}') is None
    assert s.stop() == 0
