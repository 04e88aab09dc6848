"""Starts `lorax-engine serve` for the e2e tests: a tiny Llama built by e2e_tiny_model.py (real random weights, a
trained tokenizer, a ChatML template) on a free port chosen by the server (--port 0)."""
import os
import pathlib
import re
import signal
import subprocess
import threading
import time

import pytest
import requests

import e2e_tiny_model

HERE = pathlib.Path(__file__).resolve().parent


class EngineServer:
    """One `lorax-engine serve` process; `url` once it printed its listening line."""

    def __init__(self, engine_bin, model_dir, *extra, env=None, preexec_fn=None):
        self.args = [str(engine_bin), "serve", "--model", str(model_dir), "--host", "127.0.0.1", "--port", "0",
                     "--threads", "1", *map(str, extra)]
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "OPENBLAS_NUM_THREADS": "1", **(env or {})},
                                     preexec_fn=preexec_fn)
        self.stderr = []
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()
        line = self._read_line(timeout=60)
        m = re.search(r"listening on ([\d.]+):(\d+)", line or "")
        if not m:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r} {''.join(self.stderr)}")
        self.port = int(m.group(2))
        self.url = f"http://127.0.0.1:{self.port}"

    def _read_line(self, timeout):
        out = []
        t = threading.Thread(target=lambda: out.append(self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(timeout)
        return out[0] if out else None

    def metrics(self):
        return requests.get(self.url + "/metrics", timeout=10).text

    def metric(self, name):
        """Value of an unlabelled sample (0 when absent)."""
        m = re.search(rf"^{re.escape(name)} (\S+)$", self.metrics(), re.M)
        return float(m.group(1)) if m else 0.0

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def openai(self):
        """An openai client of this server and the name of its base model."""
        import openai  # only the tests that use it need the package
        client = openai.OpenAI(base_url=self.url + "/v1", api_key="unused")
        return client, client.models.list().data[0].id


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    return e2e_tiny_model.build(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def start_server(engine_bin, model_dir):
    servers = []

    def start(*extra, model=None, env=None, preexec_fn=None):
        s = EngineServer(engine_bin, model or model_dir, *extra, env=env, preexec_fn=preexec_fn)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


@pytest.fixture(scope="session")
def server(start_server):
    """The shared server: default settings, a KV cache large enough for every test."""
    s = start_server("--max-total-tokens", "2048", "--kv-cache-tokens", "16384", "--max-waiting-requests", "256")
    yield s
    assert s.stop() == 0, "".join(s.stderr)
