#!/usr/bin/env python3
"""Golden files for models/torch_checkpoint.cc (the LibTorch-free torch.save reader).

1. tests/golden/torch_checkpoint_anyprec_tiny.json: a few tensors of
   $PMPD_SHARED_DIR/fixtures/anyprec-tiny/pytorch_model.bin (written by torch 1.13) as PyTorch
   itself reads them (`torch.load(..., map_location='cpu', weights_only=True)`): the key order,
   every dtype and shape, and the values of model.norm.weight, q_proj.lut2 of layer 0 and the first
   16 int32 words of down_proj.qweight of layer 1.
2. tests/golden/torch_checkpoint_dtypes.pt: a small state dict written by this torch (2.11) with
   many dtypes, a transposed and a permuted tensor, views at a nonzero storage offset and with a
   step (sharing one storage), a Parameter, a 0-dim and an empty tensor; and
   tests/golden/torch_checkpoint_dtypes.json: its tensors read back with torch.load, made
   contiguous. Rerunning with torch 2.11 reproduces all three files byte for byte.

Usage: python3 scripts/make_torch_checkpoint_golden.py [SHARED_DIR]
Needs: torch (PyPI; 2.11 made the committed files).
"""
import collections
import json
import os
import sys

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(REPO, "tests", "golden")

DTYPE_NAMES = {
    torch.bool: "BOOL", torch.uint8: "U8", torch.int8: "I8", torch.int16: "I16",
    torch.int32: "I32", torch.int64: "I64", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.float32: "F32", torch.float64: "F64",
}


def values(t):
    """Row-major values of t as exact Python numbers (floats widen losslessly to double)."""
    flat = t.detach().contiguous().reshape(-1)
    if t.dtype.is_floating_point:
        flat = flat.to(torch.float64)
    return flat.tolist()


def describe(t):
    return {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape)}


def anyprec_golden(shared):
    path = os.path.join(shared, "fixtures", "anyprec-tiny", "pytorch_model.bin")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    qweight = sd["model.layers.1.mlp.down_proj.qweight"]
    lut2 = sd["model.layers.0.self_attn.q_proj.lut2"]
    return {
        "note": "torch.load(map_location='cpu', weights_only=True) of "
                "fixtures/anyprec-tiny/pytorch_model.bin; "
                "made by scripts/make_torch_checkpoint_golden.py",
        "torch": torch.__version__,
        "keys": [{"name": k, **describe(v)} for k, v in sd.items()],
        "values": {
            "model.norm.weight": values(sd["model.norm.weight"]),
            "model.layers.0.self_attn.q_proj.lut2": values(lut2),
        },
        "first_words": {
            "model.layers.1.mlp.down_proj.qweight": values(qweight.reshape(-1)[:16]),
        },
    }


def dtypes_state_dict():
    base = torch.arange(10, dtype=torch.int32) * 7 - 20
    sd = collections.OrderedDict()
    sd["f32"] = torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.5 - 1
    sd["transposed"] = (torch.arange(12, dtype=torch.float32).reshape(3, 4) / 3).t()
    sd["permuted"] = torch.arange(24, dtype=torch.int16).reshape(2, 3, 4).permute(2, 0, 1)
    sd["base"] = base
    sd["view"] = base[3:7]
    sd["strided"] = base[1::3]
    sd["f16"] = torch.tensor([0.1, -65504.0, 6e-8, 1.0], dtype=torch.float16)
    sd["bf16"] = torch.tensor([[1.5, -2.25], [3e10, 1e-3]], dtype=torch.bfloat16)
    sd["i64"] = torch.tensor([-3, 0, 1 << 40, -(1 << 62)], dtype=torch.int64)
    sd["i8"] = torch.tensor([-128, -1, 0, 127], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 1, 200, 255], dtype=torch.uint8)
    sd["bool"] = torch.tensor([True, False, True])
    sd["param"] = torch.nn.Parameter(torch.tensor([[0.1, 0.2]], dtype=torch.float64),
                                     requires_grad=False)
    sd["scalar"] = torch.tensor(2.5, dtype=torch.float32)
    sd["empty"] = torch.zeros(0, 3, dtype=torch.float32)
    return sd


def main():
    shared = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
        "PMPD_SHARED_DIR", os.path.join(REPO, "..", "shared"))
    with open(os.path.join(GOLDEN, "torch_checkpoint_anyprec_tiny.json"), "w") as f:
        json.dump(anyprec_golden(shared), f, separators=(",", ":"))
        f.write("\n")

    pt = os.path.join(GOLDEN, "torch_checkpoint_dtypes.pt")
    torch.save(dtypes_state_dict(), pt)
    if os.path.getsize(pt) > 20 * 1024:
        sys.exit(f"{pt} is {os.path.getsize(pt)} bytes; keep golden files under 20 KB")
    sd = torch.load(pt, map_location="cpu", weights_only=True)
    out = {
        "note": "torch.load of tests/golden/torch_checkpoint_dtypes.pt, made contiguous; "
                "made by scripts/make_torch_checkpoint_golden.py",
        "torch": torch.__version__,
        "tensors": [{"name": k, **describe(v), "values": values(v)} for k, v in sd.items()],
    }
    with open(os.path.join(GOLDEN, "torch_checkpoint_dtypes.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
