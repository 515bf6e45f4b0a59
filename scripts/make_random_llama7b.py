#!/usr/bin/env python3
"""Writes a randomly initialised Llama-2-7B-shaped checkpoint (fp16 safetensors, about 13.5 GB) for
the scale measurements of pmpd-quantize and pmpd-gen-data on the GPU machine: weights drawn on the
GPU from N(0, 0.02) (transformers' LlamaForCausalLM init), norms 1, written tensor by tensor with
PyTorch alone (the machine has no `safetensors` or `transformers` package), plus the Llama-2
tokenizer from the shared assets. The values do not matter for time or memory, only the shapes.

  python3 scripts/make_random_llama7b.py OUT_DIR [--layers 32] [--tokenizer DIR]
"""
import argparse
import json
import os
import shutil
import struct

import torch

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--layers", type=int, default=32)
p.add_argument("--tokenizer", default=os.path.join(os.environ.get("PMPD_SHARED_DIR", "../shared"),
                                                   "models/llama2-tokenizer"))
a = p.parse_args()
H, I, V, L = 4096, 11008, 32000, a.layers
config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": H,
          "intermediate_size": I, "num_hidden_layers": L, "num_attention_heads": 32,
          "num_key_value_heads": 32, "vocab_size": V, "max_position_embeddings": 4096,
          "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False,
          "hidden_act": "silu", "torch_dtype": "float16", "bos_token_id": 1, "eos_token_id": 2}
shapes = {"model.embed_tokens.weight": [V, H], "model.norm.weight": [H], "lm_head.weight": [V, H]}
for l in range(L):
    p_ = f"model.layers.{l}."
    shapes[p_ + "input_layernorm.weight"] = [H]
    shapes[p_ + "post_attention_layernorm.weight"] = [H]
    for m in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"):
        shapes[p_ + m + ".weight"] = [H, H]
    shapes[p_ + "mlp.gate_proj.weight"] = [I, H]
    shapes[p_ + "mlp.up_proj.weight"] = [I, H]
    shapes[p_ + "mlp.down_proj.weight"] = [H, I]
names = sorted(shapes)
header, offset = {"__metadata__": {"format": "pt"}}, 0
for n in names:
    size = 2
    for d in shapes[n]:
        size *= d
    header[n] = {"dtype": "F16", "shape": shapes[n], "data_offsets": [offset, offset + size]}
    offset += size
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
os.makedirs(a.out, exist_ok=True)
dev = "cuda" if torch.cuda.is_available() else "cpu"
gen = torch.Generator(device=dev).manual_seed(0)
tmp = os.path.join(a.out, "model.safetensors.tmp")
with open(tmp, "wb") as f:
    f.write(struct.pack("<Q", len(h)))
    f.write(h)
    for i, n in enumerate(names):
        if n.endswith("norm.weight"):
            t = torch.ones(shapes[n], dtype=torch.float16, device=dev)
        else:
            t = torch.empty(shapes[n], dtype=torch.float16, device=dev).normal_(0, 0.02, generator=gen)
        f.write(t.cpu().view(torch.int16).numpy().tobytes())
        if i % 50 == 0:
            print(f"{i}/{len(names)} tensors", flush=True)
os.replace(tmp, os.path.join(a.out, "model.safetensors"))
with open(os.path.join(a.out, "config.json"), "w") as f:
    json.dump(config, f, indent=1)
for name in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"):
    src = os.path.join(a.tokenizer, name)
    if os.path.exists(src):
        shutil.copy(src, a.out)
print(f"wrote {a.out}: {offset / 1e9:.1f} GB of fp16 weights, {L} layers")
