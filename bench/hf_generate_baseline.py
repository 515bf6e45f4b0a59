#!/usr/bin/env python3
"""Baseline for pmpd-bench-generate: Hugging Face transformers greedy decode tokens/s on the CPU,
same model, prompt and token count (run side by side with build/bench/pmpd-bench-generate).

Usage: python3 bench/hf_generate_baseline.py MODEL_DIR [--new-tokens 256] [--repeats 5] [--threads N]
"""
import argparse
import statistics
import time

import torch
from transformers import LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    model = LlamaForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32).eval()
    ids = torch.tensor([[1, 403, 407, 261, 378]])  # "Once upon a time"
    rates = []
    with torch.no_grad():
        for r in range(a.repeats + 1):
            t0 = time.perf_counter()
            out = model.generate(ids, max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens, do_sample=False,
                                 pad_token_id=0)
            dt = time.perf_counter() - t0
            if r:
                rates.append((out.shape[1] - ids.shape[1]) / dt)
    print(f"transformers generate: median {statistics.median(rates):.1f} tokens/s (min {min(rates):.1f}, "
          f"max {max(rates):.1f}) over {a.repeats} runs of {a.new_tokens} tokens, {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
