"""--adapter-registry (the operator's adapter ConfigMap mounted into the pod): a client names a registered adapter by
its id alone and gets exactly what the adapter's source gives; an id added to the file later works without a
restart; a broken update keeps the last good list; GET /adapters/{id} says whether the pod knows the id; an
unreadable registry at start is a clear error; a changed entry replaces the loaded copy once it is idle."""
import json
import pathlib
import subprocess
import time

import requests

REPO = pathlib.Path(__file__).resolve().parents[2]
LLAMA = REPO / "tests" / "fixtures" / "models" / "llama"
ADAPTERS = REPO / "tests" / "fixtures" / "adapters" / "llama"


def entry(id_, adapter):
    return {"id": id_, "source": "local", "location": str(ADAPTERS / adapter)}


def write(path, entries):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries))
    tmp.replace(path)  # like kubelet's atomic ConfigMap update


def generate(url, **params):
    r = requests.post(url + "/generate", json={"inputs": "Hello there", "parameters": {
        "max_new_tokens": 6, "details": True, **params}}, timeout=60)
    return r.status_code, r.json()


def tokens(body):
    return [t["id"] for t in body["details"]["tokens"]]


def test_registered_ids_resolve_and_update_without_restart(start_server, tmp_path):
    reg = tmp_path / "adapters.json"
    write(reg, [entry("support-bot", "attn-r8")])
    s = start_server("--adapter-registry", reg, "--adapter-root", ADAPTERS, model=LLAMA)
    code, by_id = generate(s.url, adapter_id="support-bot")
    assert code == 200, by_id
    code, by_path = generate(s.url, adapter_id=str(ADAPTERS / "attn-r8"), adapter_source="local")
    assert code == 200 and tokens(by_id) == tokens(by_path)
    code, base = generate(s.url)
    assert tokens(base) != tokens(by_id), "the adapter must change the output for this test to mean anything"
    info = requests.get(s.url + "/adapters/support-bot", timeout=10).json()
    assert info["registered"] is True and info["loaded"] is True
    models = [m["id"] for m in requests.get(s.url + "/v1/models", timeout=10).json()["data"]]
    assert models.count("support-bot") == 1  # loaded and registered: listed once
    code, body = generate(s.url, adapter_id="sales-bot")
    assert code == 404, body

    time.sleep(1.1)  # the file is checked at most once a second
    write(reg, [entry("support-bot", "attn-r8"), entry("sales-bot", "mlp-r1-layers")])
    time.sleep(1.1)
    info = requests.get(s.url + "/adapters/sales-bot", timeout=10).json()
    assert info == {**info, "registered": True, "loaded": False}
    assert "sales-bot" in [m["id"] for m in requests.get(s.url + "/v1/models", timeout=10).json()["data"]]
    code, sales = generate(s.url, adapter_id="sales-bot")
    assert code == 200, sales
    code, direct = generate(s.url, adapter_id=str(ADAPTERS / "mlp-r1-layers"), adapter_source="local")
    assert tokens(sales) == tokens(direct)

    # a new version of a loaded, idle adapter (another location) replaces the copy held
    time.sleep(1.1)
    write(reg, [{**entry("support-bot", "mlp-r1-layers"), "generation": 2}, entry("sales-bot", "mlp-r1-layers")])
    time.sleep(1.1)
    assert requests.get(s.url + "/adapters/support-bot", timeout=10).json()["registry_generation"] == 2
    code, v2 = generate(s.url, adapter_id="support-bot")
    assert code == 200 and tokens(v2) == tokens(direct) != tokens(by_id), v2

    time.sleep(1.1)
    write(reg, [entry("support-bot", "attn-r8"), entry("sales-bot", "mlp-r1-layers")])
    time.sleep(1.1)
    code, again = generate(s.url, adapter_id="support-bot")
    assert code == 200 and tokens(again) == tokens(by_id)
    reg.write_text("{ not json")
    time.sleep(1.1)
    code, again = generate(s.url, adapter_id="support-bot")
    assert code == 200 and tokens(again) == tokens(by_id)
    assert any("keeping the previous list" in line for line in s.stderr)
    assert requests.get(s.url + "/adapters/nobody", timeout=10).status_code == 404


def test_bad_registry_at_start_is_a_clear_error(engine_bin, tmp_path):
    for content, words in [(None, "cannot read the adapter registry"), ("[1]", "entries must be objects"),
                           ('[{"id": "a", "source": "ftp", "location": "x"}]', "source must be"),
                           ('[{"id": "a b", "source": "local", "location": "/x"}]', "printable ASCII"),
                           ('[{"id": "a", "source": "local", "location": "/x", "sha": "00"}]', "unknown key `sha`"),
                           ('[{"id": "a", "source": "local", "location": "/x", "preload": "yes"}]', "boolean")]:
        reg = tmp_path / "r.json"
        if content is None:
            reg.unlink(missing_ok=True)
        else:
            reg.write_text(content)
        r = subprocess.run([str(engine_bin), "serve", "--model", str(LLAMA), "--port", "0", "--adapter-registry",
                            str(reg)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and words in r.stderr, (content, r.stderr)


def test_info_lists_preloaded_adapters_and_where_they_are(start_server, tmp_path):
    reg = tmp_path / "adapters.json"
    write(reg, [{**entry("warm", "attn-r8"), "preload": True}, entry("cold", "mlp-r1-layers")])
    s = start_server("--adapter-registry", reg, "--adapter-root", ADAPTERS, model=LLAMA)
    info = requests.get(s.url + "/info", timeout=10).json()
    assert info["preloaded_adapters"] == [{"adapter_id": "warm", "tier": None}]  # the operator has not loaded it yet
    code, body = generate(s.url, adapter_id="warm")
    assert code == 200, body
    info = requests.get(s.url + "/info", timeout=10).json()
    assert [a["adapter_id"] for a in info["preloaded_adapters"]] == ["warm"]
    assert info["preloaded_adapters"][0]["tier"] in ("host", "device")
