#!/usr/bin/env python3
"""Golden files for scheduler_runtime/kv_classifier.cc: a PMPD-reference-format classifier.

Writes tests/golden/reference_classifier/classifier_4_3.pt, a torch.save(state_dict) with the
reference's keys (query, ln.*, project.0.*, project.2.*; plus one unrelated key the loader must
skip) and known values, for kv_heads 4 and head_dim 8 (stories260K's shape), and
tests/golden/reference_classifier.json: fixed K/V inputs and the logits and probabilities this
script's PyTorch forward gives. The forward follows the architecture as documented in
scheduler_runtime/kv_classifier_module.h (mean over heads, [H,H,D] query bank, softmax over T,
mean over the second query axis, [B, D, H] flatten, LayerNorm, Linear-ReLU-Linear).

Usage: python3 scripts/make_classifier_golden.py     Needs: torch (2.11 made the committed files).
"""
import json
import math
import os

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(REPO, "tests", "golden", "reference_classifier")
H, D, C = 4, 8, 4


def state_dict():
    hd = H * D
    q = torch.tensor([[[0.5 * math.sin(1 + 7 * i + 3 * j + d) for d in range(D)] for j in range(H)] for i in range(H)])
    sd = {
        "query": q,
        "ln.weight": torch.tensor([1 + 0.1 * math.cos(k) for k in range(hd)]),
        "ln.bias": torch.tensor([0.05 * math.sin(k) for k in range(hd)]),
        "project.0.weight": torch.tensor([[0.2 * math.sin(0.37 * r + 0.11 * c) for c in range(hd)] for r in range(hd)]),
        "project.0.bias": torch.tensor([0.01 * r for r in range(hd)]),
        "project.2.weight": torch.tensor([[0.3 * math.cos(1.3 * r + 0.07 * c) for c in range(hd)] for r in range(C)]),
        "project.2.bias": torch.tensor([0.1, -0.2, 0.05, 0.0]),
        "not_part_of_the_model": torch.zeros(3),
    }
    return sd


def forward(sd, k, v):
    """k, v: [B, H, T, D] -> logits [B, C]."""
    b = k.shape[0]
    kbar, vbar = k.mean(1), v.mean(1)                                   # [B, T, D]
    scores = torch.matmul(sd["query"].unsqueeze(0), kbar.transpose(1, 2).unsqueeze(1)) / math.sqrt(D)
    w = torch.softmax(scores, -1)                                       # [B, H, H, T]
    att = torch.matmul(w, vbar.unsqueeze(1)).mean(2)                    # [B, H, D]
    x = att.transpose(1, 2).reshape(b, -1)                              # [B, D*H]
    x = torch.nn.functional.layer_norm(x, (H * D,), sd["ln.weight"], sd["ln.bias"])
    x = torch.relu(x @ sd["project.0.weight"].T + sd["project.0.bias"])
    return x @ sd["project.2.weight"].T + sd["project.2.bias"]


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    sd = state_dict()
    torch.save(sd, os.path.join(OUT_DIR, "classifier_4_3.pt"))
    cases = []
    for t, phase in [(7, 0.0), (3, 1.0)]:
        k = torch.tensor([[[math.sin(0.3 * h + 0.7 * s + 0.11 * d + phase) for d in range(D)] for s in range(t)]
                          for h in range(H)]).unsqueeze(0)
        v = torch.tensor([[[math.cos(0.2 * h - 0.5 * s + 0.13 * d + phase) for d in range(D)] for s in range(t)]
                          for h in range(H)]).unsqueeze(0)
        logits = forward(sd, k, v)[0]
        cases.append({"T": t, "k": k[0].flatten().tolist(), "v": v[0].flatten().tolist(),
                      "logits": logits.tolist(), "probabilities": torch.softmax(logits, -1).tolist()})
    with open(os.path.join(REPO, "tests", "golden", "reference_classifier.json"), "w") as f:
        json.dump({"kv_heads": H, "head_dim": D, "cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
