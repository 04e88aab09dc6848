"""bench/serving/serve_bench.py on the demo model (CPU): the benchmark starts the server, drives streaming clients
over a power-law mix of generated adapters in 2 device slots, and its figures agree with what it asked for
(every request answered, the adapters it named loaded, evicted through the 2 slots, never more than 2 in a batch)."""
import json
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_serving_benchmark_small_case(engine_bin, tmp_path):
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "serving" / "serve_bench.py"), "--engine", str(engine_bin),
         "--model", str(REPO / "models" / "demo"), "--clients", "8", "--requests", "48", "--prompt-words", "30",
         "--max-new-tokens", "12", "--adapters", "24", "--adapter-files", "3", "--adapter-rank", "8",
         "--popularity", "zipf:1.0", "--load-probe", "2", "--table", "--log", str(tmp_path / "server.log"),
         "--server-args", "--max-loaded-adapters", "2", "--threads", "1"],
        capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr + (tmp_path / "server.log").read_text()
    rows = {r["phase"]: r for r in map(json.loads, (l for l in out.stdout.splitlines() if l.startswith("{")))}
    base, adapters, probe = rows["base"], rows["adapters"], rows["load-probe"]
    for r in (base, adapters):
        assert r["requests"] == 48 and r["ok"] == 48 and r["failures"] == 0, r
        assert r["output_tokens_per_s"] > 0 and r["ttft_ms_p50"] > 0 and r["itl_ms_p50"] > 0
    assert base["loads_to_host"] == 0 and base["distinct_adapters"] == 0
    # Every adapter named was loaded once from its source, and the 2 slots had to evict.
    assert adapters["loads_to_host"] == adapters["distinct_adapters"] > 2, adapters
    assert adapters["loads_to_device"] >= adapters["distinct_adapters"]
    assert adapters["evictions_device"] >= adapters["loads_to_device"] - 2
    assert adapters["max_adapters_in_batch"] <= 2 and adapters["load_failures"] == 0
    assert probe["cold_loads"] == 2 and probe["tiers_after"] == ["device"], probe
    assert "| adapters (24 adapters, zipf:1.0) | 48 | 0 |" in out.stdout


def test_prefix_caching_benchmark_small_case(engine_bin, tmp_path):
    """bench/serving/prefix_bench.py: with the cache on, the shared system prompt is computed once (by the first
    request) and the concurrent requests compute only their own words; with it off, everything."""
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "serving" / "prefix_bench.py"), "--engine", str(engine_bin),
         "--model", str(REPO / "models" / "demo"), "--requests", "8", "--system-tokens", "128",
         "--max-new-tokens", "4", "--log-dir", str(tmp_path), "--server-args", "--threads", "1"],
        capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    rows = {r["mode"]: r for r in map(json.loads, (l for l in out.stdout.splitlines() if l.startswith("{")))}
    off, on = rows["off"], rows["on"]
    assert off["failures"] == on["failures"] == 0
    assert off["prompt_tokens"] == on["prompt_tokens"] > 8 * 128
    assert off["prompt_tokens_computed"] == off["prompt_tokens"] and off["prompt_tokens_reused"] == 0
    # Each request reuses the full blocks of the shared prompt (default 16-token blocks).
    assert on["prompt_tokens_reused"] >= 8 * (on["system_prompt_tokens"] // 16 - 1) * 16, on
    assert on["answers_equal_to_other_mode"] == "8/8"
    assert "prefix-bench: 8 requests sharing a" in out.stdout
