"""Independent references for the e2e tests: Python jinja2 renders chat templates, `tokenizers` encodes."""
import json

import jinja2
from tokenizers import Tokenizer


def reference_chat_ids(model_dir, messages):
    cfg = json.loads((model_dir / "tokenizer_config.json").read_text())
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    text = env.from_string(cfg["chat_template"]).render(messages=messages, add_generation_prompt=True,
                                                         eos_token=cfg["eos_token"], bos_token=cfg["bos_token"])
    return Tokenizer.from_file(str(model_dir / "tokenizer.json")).encode(text, add_special_tokens=False).ids
