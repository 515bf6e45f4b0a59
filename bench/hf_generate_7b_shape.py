#!/usr/bin/env python3
"""Baseline for `pmpd-bench --mode e2e`: Hugging Face transformers greedy `generate` in fp16 on the GPU,
batch 1, for a randomly initialised LlamaForCausalLM of the Llama-2-7B shape (hidden 4096, 32 layers,
FFN 11008, vocab 32000, 32 heads, 32 KV heads), built from a LlamaConfig: nothing is downloaded.

Same protocol as the e2e mode: a prompt of --context random tokens, --new-tokens generated. Decode
tokens/s excludes the prefill: (new_tokens - 1) / (t(new_tokens) - t(1)), each t the median over
--repeats calls of generate (token 0 comes from the prefill, as in pmpd's timeline).

Usage (on the GPU machine, next to build-gpu/bench/pmpd-bench --mode e2e):
  python3 bench/hf_generate_7b_shape.py [--context 512] [--new-tokens 128] [--repeats 3] [--layers 32]
Needs torch with CUDA and transformers (pip install transformers).
"""
import argparse
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--layers", type=int, default=32)
    a = ap.parse_args()
    config = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=a.layers,
                         num_attention_heads=32, num_key_value_heads=32, vocab_size=32000,
                         max_position_embeddings=4096, rms_norm_eps=1e-5, tie_word_embeddings=False)
    torch.manual_seed(0)
    # Initialise on the GPU in fp16 directly (a 7B float32 init on the CPU takes minutes and 27 GB);
    # the default dtype works across transformers versions (torch_dtype= was renamed dtype=).
    torch.set_default_dtype(torch.float16)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config)
    torch.set_default_dtype(torch.float32)
    model = model.cuda().eval()
    assert model.model.layers[0].mlp.down_proj.weight.dtype == torch.float16
    g = torch.Generator().manual_seed(11)
    ids = torch.randint(3, config.vocab_size, (1, a.context), generator=g).cuda()
    mask = torch.ones_like(ids)

    def timed(new_tokens):
        times = []
        with torch.inference_mode():
            for r in range(a.repeats + 1):  # the first call warms up (kernel selection, allocator)
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                out = model.generate(ids, attention_mask=mask, max_new_tokens=new_tokens,
                                     min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
                torch.cuda.synchronize()
                if r:
                    times.append(time.perf_counter() - t0)
                assert out.shape[1] - ids.shape[1] == new_tokens
        return statistics.median(times)

    t1 = timed(1)
    tn = timed(a.new_tokens)
    decode = (a.new_tokens - 1) / (tn - t1)
    print(f"device {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print(f"transformers generate, Llama-2-7B shape ({a.layers} layers), fp16, random weights, batch 1: "
          f"prefill {a.context} tokens {1000 * t1:.1f} ms (with the first token); decode {decode:.1f} tokens/s "
          f"({1000 / decode:.2f} ms/token) over {a.new_tokens - 1} steps; whole generate "
          f"{a.new_tokens / tn:.1f} tokens/s; median of {a.repeats} runs")


if __name__ == "__main__":
    main()
