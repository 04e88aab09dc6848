"""--kv-cache-dtype through the real server: fp8 (CPU-emulated e4m3) serves lorax-client and openai and reports a
pool of 1-byte slots; a bad value is a usage error at start, never a silent fallback. The numbers are checked
against transformers with rounded K/V in tests/unit/model/fp8_kv_test.cpp."""
import subprocess

import openai
import pytest
from lorax import Client

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # lorax-client 0.6 uses pydantic v1 .dict()


def test_fp8_kv_cache_serves_both_apis(start_server):
    s = start_server("--kv-cache-dtype", "fp8", "--kv-cache-tokens", "1024", "--max-total-tokens", "256")
    r = Client(s.url).generate("The quick brown fox", max_new_tokens=6, decoder_input_details=True)
    assert r.details.generated_tokens == 6 and all(t.logprob <= 0 for t in r.details.prefill[1:])
    oa = openai.OpenAI(base_url=s.url + "/v1", api_key="unused")
    c = oa.completions.create(model=oa.models.list().data[0].id, prompt="The quick brown fox", max_tokens=6, temperature=0)
    assert c.usage.completion_tokens == 6
    assert s.metric("lorax_kv_cache_blocks") == 1024 // 16
    assert s.stop() == 0, "".join(s.stderr)


def test_kv_cache_dtype_takes_only_known_values(engine_bin, model_dir):
    for bad in ["int4", "", "bf16x"]:
        r = subprocess.run([str(engine_bin), "serve", "--model", str(model_dir), "--port", "0", "--kv-cache-dtype", bad],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "--kv-cache-dtype must be auto, fp8 or fp8_e4m3" in r.stderr, (bad, r.stderr)
