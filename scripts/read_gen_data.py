#!/usr/bin/env python3
"""Reads a pmpd-gen-data HDF5 file with h5py (layout: docs/gen-data-format.md).

Prints one JSON object: the header, the class counts per pair and, with --sample I, that sample's
K (as [kv_heads, T, head_dim] lists), label and Rouge-L values per pair. An example of reading the
format from Python, and the tests' cross-check of the C++ writer.
"""
import argparse
import json

import h5py
import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--sample", type=int, default=-1)
    args = ap.parse_args()
    with h5py.File(args.path, "r") as f:
        a = f.attrs
        if "completed_samples" not in a:
            raise SystemExit(f"{args.path}: incomplete file (no completed_samples)")
        out = {
            "samples": int(a["completed_samples"]),
            "precisions": [int(p) for p in a["precisions"]],
            "candidate_steps": [int(s) for s in a["candidate_steps"]],
            "model_fingerprint": a["model_fingerprint"],
            "reference": a["reference"],
        }
        precisions = out["precisions"]
        for hi, lo in zip(precisions, precisions[1:]):
            g = f[f"pair_{hi}_{lo}"]
            labels = g["labels"][:]
            entry = {"class_counts": np.bincount(labels, minlength=len(out["candidate_steps"]) + 1).tolist()}
            i = args.sample
            if i >= 0:
                off, t = int(g["kv_offsets"][i]), int(g["prompt_lengths"][i])
                k = g["k"][off:off + t].transpose(1, 0, 2)  # stored [T, H, D]; the model's layout is [H, T, D]
                entry["k"] = k.astype(np.float32).tolist()
                entry["label"] = int(labels[i])
                # The per-candidate values the file's label metric stored (docs/gen-data-format.md).
                metric = a.get("label_metric", "rouge_l")
                metric = metric.decode() if isinstance(metric, bytes) else metric
                per_step, high = ("excess_nll", "nll_high") if metric == "excess_nll" else ("rouge_l", "rouge_l_high")
                entry[per_step] = g[per_step][i].tolist()
                entry[high] = float(g[high][i])
            out[f"pair_{hi}_{lo}"] = entry
    print(json.dumps(out))


if __name__ == "__main__":
    main()
