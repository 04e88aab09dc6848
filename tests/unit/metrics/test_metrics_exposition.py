"""Checks lorax_metrics' text exposition with two independent references:
promtool (the Prometheus project's linter) and the prometheus_client parser."""
import math
import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

import os
import pathlib

# Same rule as tests/conftest.py (not imported: other folders' conftest.py could shadow it).
BUILD = pathlib.Path(os.environ.get("LORAX_BUILD_DIR", pathlib.Path(__file__).resolve().parents[3] / "build"))


@pytest.fixture(scope="module")
def sample_text():
    exe = BUILD / "tests" / "metrics_sample"
    assert exe.exists(), f"{exe} not built"
    return subprocess.run([str(exe)], check=True, capture_output=True, text=True, timeout=30).stdout


def test_promtool_accepts(sample_text):
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing (Debian package prometheus)"
    res = subprocess.run([promtool, "check", "metrics"], input=sample_text, capture_output=True, text=True,
                         timeout=30)
    # Exit 0 and no output: it parses and has no lint findings.
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip() == "" and res.stderr.strip() == ""


def test_promtool_rejects_broken_escaping():
    # Guards the test itself: an unescaped newline in a label value must fail.
    bad = '# TYPE x gauge\nx{a="b\nc"} 1\n'
    res = subprocess.run([shutil.which("promtool"), "check", "metrics"], input=bad, capture_output=True,
                         text=True, timeout=30)
    assert res.returncode != 0


def test_python_parser_reads_same_values(sample_text):
    fams = {f.name: f for f in text_string_to_metric_families(sample_text)}
    req = fams["lorax_requests"]  # prometheus_client drops a counter's _total suffix
    assert req.type == "counter"
    assert req.documentation == "Total requests.\nSecond line with a \\ backslash"
    vals = {s.labels["adapter"]: s.value for s in req.samples if not s.name.endswith("_created")}
    assert vals == {"base": 3.0, "weird \"quoted\"\nnew\\line": 0.5}

    q = fams["lorax_queue_size"]
    assert q.type == "gauge"
    assert {s.labels["pool"]: s.value for s in q.samples} == {"a": -2.25, "b": math.inf}
    assert math.isnan(fams["lorax_nan"].samples[0].value)

    h = fams["lorax_request_duration"]
    assert h.type == "histogram"
    base = [s for s in h.samples if s.labels.get("adapter") == "base"]
    buckets = {s.labels["le"]: s.value for s in base if s.name.endswith("_bucket")}
    observed = [0.05, 0.1, 0.3, 0.7, 3.0, 10.0]
    for le in ["0.1", "0.5", "1", "2.5", "+Inf"]:
        bound = math.inf if le == "+Inf" else float(le)
        assert buckets[le] == sum(1 for v in observed if v <= bound), le
    by_name = {s.name: s.value for s in base if not s.name.endswith("_bucket")}
    assert by_name["lorax_request_duration_count"] == len(observed)
    assert by_name["lorax_request_duration_sum"] == pytest.approx(sum(observed))
    odd = [s for s in h.samples if s.labels.get("adapter") == "x\ny" and s.name.endswith("_count")]
    assert odd[0].value == 1
