#!/usr/bin/env python3
"""Golden logits for a small random Llama (untied embeddings, grouped-query attention, explicit
head_dim, rope_scaling "llama3") from Hugging Face transformers.

The weights are not committed: they come from the splitmix64 stream that models/random_llama.cc
implements (same order, same scales), so the C++ test rebuilds the identical checkpoint from the
seed and compares its logits to the ones stored here.

Usage: python3 scripts/make_golden_random_llama.py > tests/golden/random_llama3_gqa.json
Needs: torch, transformers (PyPI).
"""
import json
import sys

import numpy as np
import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

SEED = 20261124
CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 160,
    "num_hidden_layers": 2,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "vocab_size": 256,
    "max_position_embeddings": 256,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                     "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "torch_dtype": "float32",
}
PROMPT_LEN = 40
GREEDY_NEW = 24
MASK64 = (1 << 64) - 1


class Stream:
    """splitmix64, consumed in order; identical to models/random_llama.cc."""

    def __init__(self, seed):
        self.state = seed & MASK64

    def take(self, n, scale, offset):
        gamma = np.uint64(0x9E3779B97F4A7C15)
        i = np.arange(1, n + 1, dtype=np.uint64)
        with np.errstate(over="ignore"):
            z = np.uint64(self.state) + i * gamma
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z = z ^ (z >> np.uint64(31))
        self.state = (self.state + n * 0x9E3779B97F4A7C15) & MASK64
        u = (z >> np.uint64(40)).astype(np.float64) / 16777216.0
        w = ((2.0 * u - 1.0) * scale).astype(np.float32).astype(np.float64)
        return (offset + w).astype(np.float32)


def random_state_dict(c, seed):
    s = Stream(seed)
    H, I, V = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    q_dim = c["num_attention_heads"] * c["head_dim"]
    kv_dim = c["num_key_value_heads"] * c["head_dim"]
    sd = {}

    def put(name, shape, scale, offset=0.0):
        sd[name] = torch.from_numpy(s.take(int(np.prod(shape)), scale, offset).reshape(shape))

    def lin(name, out, inp):
        put(name, (out, inp), np.sqrt(3.0 / inp))

    put("model.embed_tokens.weight", (V, H), 1.0)
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        put(p + "input_layernorm.weight", (H,), 0.1, 1.0)
        lin(p + "self_attn.q_proj.weight", q_dim, H)
        lin(p + "self_attn.k_proj.weight", kv_dim, H)
        lin(p + "self_attn.v_proj.weight", kv_dim, H)
        lin(p + "self_attn.o_proj.weight", H, q_dim)
        put(p + "post_attention_layernorm.weight", (H,), 0.1, 1.0)
        lin(p + "mlp.gate_proj.weight", I, H)
        lin(p + "mlp.up_proj.weight", I, H)
        lin(p + "mlp.down_proj.weight", H, I)
    put("model.norm.weight", (H,), 0.1, 1.0)
    lin("lm_head.weight", V, H)
    return sd


def main():
    torch.manual_seed(0)
    cfg = LlamaConfig(**{k: v for k, v in CONFIG.items() if k not in ("architectures", "model_type")})
    model = LlamaForCausalLM(cfg).eval().to(torch.float32)
    missing, unexpected = model.load_state_dict(random_state_dict(CONFIG, SEED), strict=False)
    missing = [m for m in missing if "rotary_emb" not in m]
    assert not missing and not unexpected, (missing, unexpected)
    rope = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None)
    assert rope and rope.get("rope_type") == "llama3", rope

    rng = np.random.default_rng(7)
    prompt = [1] + [int(x) for x in rng.integers(3, CONFIG["vocab_size"], PROMPT_LEN - 1)]
    with torch.no_grad():
        logits = model(torch.tensor([prompt])).logits[0].double().numpy()
        gen = model.generate(torch.tensor([prompt]), max_new_tokens=GREEDY_NEW, do_sample=False,
                             eos_token_id=None, pad_token_id=0)
    out = {
        "note": "Logits of a random Llama rebuilt from `seed` by models/random_llama.cc; made by "
                "scripts/make_golden_random_llama.py with Hugging Face transformers (float32, CPU).",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "seed": SEED,
        "config": CONFIG,
        "prompt_ids": prompt,
        "logits": [[round(float(v), 6) for v in row] for row in logits],
        "greedy_new_ids": [int(x) for x in gen[0, len(prompt):]],
        "inv_freq": [float(v) for v in model.model.rotary_emb.inv_freq],
    }
    json.dump(out, sys.stdout, indent=None)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
