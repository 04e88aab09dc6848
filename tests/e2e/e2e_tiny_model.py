"""Builds a tiny Llama model folder for the server tests when the repo's fixture models are not there:
a byte-level BPE tokenizer trained with the `tokenizers` library, a ChatML chat template, a config.json and
random weights N(0, 0.25) (large enough that different prompts continue differently) in model.safetensors."""
import json
import pathlib

import numpy as np
from safetensors.numpy import save_file

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

TEXT = [
    "The quick brown fox jumps over the lazy dog.",
    "Paged attention keeps the key and value cache in fixed-size blocks.",
    "Continuous batching mixes prefills and decodes in one forward pass.",
    "Low-rank adapters add a small update to the weights of a large model.",
    "Hello world! How are you today? I am fine, thank you.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000. Unicode: café, naïve, Grüße, 東京.",
] * 20

CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def build(folder: pathlib.Path) -> pathlib.Path:
    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(TEXT, trainer)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": None, "eos_token": "<|im_end|>",
        "chat_template": CHATML}))
    vocab, hidden, inter, layers, heads, kv_heads = tok.get_vocab_size(), 64, 128, 2, 4, 2
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": vocab,
        "hidden_size": hidden, "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv_heads, "max_position_embeddings": 512, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "tie_word_embeddings": True, "eos_token_id": 2, "bos_token_id": 0, "hidden_act": "silu",
        "torch_dtype": "float32"}))
    rng = np.random.default_rng(0)

    def rand(*shape, std=0.25):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    kv = kv_heads * hidden // heads
    w = {"model.embed_tokens.weight": rand(vocab, hidden, std=1.0), "model.norm.weight": 1 + rand(hidden)}
    for i in range(layers):
        p = f"model.layers.{i}."
        w.update({p + "self_attn.q_proj.weight": rand(hidden, hidden), p + "self_attn.k_proj.weight": rand(kv, hidden),
                  p + "self_attn.v_proj.weight": rand(kv, hidden), p + "self_attn.o_proj.weight": rand(hidden, hidden),
                  p + "mlp.gate_proj.weight": rand(inter, hidden), p + "mlp.up_proj.weight": rand(inter, hidden),
                  p + "mlp.down_proj.weight": rand(hidden, inter), p + "input_layernorm.weight": 1 + rand(hidden),
                  p + "post_attention_layernorm.weight": 1 + rand(hidden)})
    save_file(w, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


if __name__ == "__main__":
    import sys
    print(build(pathlib.Path(sys.argv[1])))
