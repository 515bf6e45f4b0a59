#!/usr/bin/env python3
"""Golden tensors of SmolLM2-135M-Instruct.Q4_1.gguf as Hugging Face transformers dequantizes them
(`from_pretrained(dir, gguf_file=name, dtype=float32)`: gguf-py's numpy dequantization, then the
converter's Q/K row permutation undone), for tests/models/gguf_test.cc (our GGUF reader).

For every tensor of the state dict: its shape, the CRC-32 (zlib) of its float32 little-endian bytes
in Hugging Face layout (so the C++ test checks every element bit for bit), and the float64 sum and
sum of squares. For a handful of tensors also a readable sample: rows 0, 1, 63 and the last row,
first 16 and last 16 columns (the test prints these on a mismatch).

Usage: /root/.cache/pmpd/venv/bin/python scripts/make_gguf_golden.py > tests/golden/smollm2_gguf_tensors.json
Needs: torch, transformers, gguf (scripts/install-deps.sh --dev).
"""
import json
import os
import subprocess
import zlib

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM

SAMPLED = [
    "model.embed_tokens.weight",
    "model.norm.weight",
] + [
    f"model.layers.{l}.{m}.weight"
    for l in (0, 29)
    for m in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
              "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "input_layernorm",
              "post_attention_layernorm")
]


def sample(t):
    a = t if t.ndim == 2 else t.reshape(1, -1)
    rows = sorted({0, 1, 63, a.shape[0] - 1} & set(range(a.shape[0])))
    cols = sorted(set(range(min(16, a.shape[1]))) | set(range(max(0, a.shape[1] - 16), a.shape[1])))
    return {"rows": rows, "cols": cols,
            "values": [[float(a[r, c]) for c in cols] for r in rows]}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.environ.get("PMPD_SMOLLM2_GGUF") or subprocess.check_output(
        [os.path.join(here, "pmpd-env.sh"), "smollm2"], text=True).strip()
    d, name = os.path.dirname(path), os.path.basename(path)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32)
    sd = model.state_dict()
    out = {
        "note": "scripts/make_gguf_golden.py: transformers gguf_file=, float32 state dict",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "gguf": name,
        "tie_word_embeddings": bool(model.config.tie_word_embeddings),
        "tensors": {},
    }
    for k in sorted(sd):
        if k == "lm_head.weight" and model.config.tie_word_embeddings:
            continue  # the tied embedding, not a tensor of the file
        t = sd[k].detach().contiguous().numpy()
        assert t.dtype == np.float32, (k, t.dtype)
        x = t.astype(np.float64)
        e = {"shape": list(t.shape),
             "crc32": zlib.crc32(t.astype("<f4").tobytes()),
             "sum": float(x.sum()),
             "sum_sq": float((x * x).sum())}
        if k in SAMPLED:
            e["sample"] = sample(t)
        out["tensors"][k] = e
    # One line per tensor: small diffs when the file is regenerated.
    tensors = out.pop("tensors")
    head = json.dumps(out, indent=1)[:-2]
    lines = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in tensors.items()]
    print(head + ',\n "tensors": {\n' + ",\n".join(lines) + "\n }\n}")


if __name__ == "__main__":
    main()
