#!/usr/bin/env python3
"""The peers of `pmpd-bench --mode e2e`: a gpt-fast-style decode of the Llama-2-7B shape in PyTorch.

What a user could run instead of pmpd, end to end (issue 15), on the same GPU in the same device run
as pmpd-bench. The model is gpt-fast's design: a static KV cache of context + new tokens, RMSNorm,
rotary, `F.scaled_dot_product_attention` over the whole static cache with a mask, SwiGLU, greedy
argmax; a decode step (token in, next token out, no host sync) is captured as one CUDA graph, so no
Python or launch overhead is timed, as in gpt-fast's `mode="reduce-overhead"`. With `--compile` the
step is `torch.compile`d first (inductor fuses the small ops; as gpt-fast does), then graphed.

Linear layers (every projection and lm_head; weights random, nothing is downloaded):
  - fp16: torch.nn.functional.linear (cuBLAS), fp16 activations;
  - int4: tinygemm int4 group 128, `torch._weight_int4pack_mm` (bf16 activations; gpt-fast's and
    torchao's int4 path); lm_head stays bf16 as in gpt-fast;
  - gemlite4 / gemlite2: gemlite 0.6 A16W4 / A16W2 group 128 (Triton, fp16), lm_head fp16.

Protocol as pmpd-bench's e2e mode: the cache is filled as if a prompt of --context tokens had been
prefilled (random K/V: decode time does not depend on their values), then --new-tokens - 1 decode
steps are timed with CUDA events around the graph replays; median over --repeats; tokens/s =
steps / time. Attention reads the whole static cache every step (gpt-fast's design, as written).

Usage: python3 bench/peers_e2e_bench.py [--variants fp16,int4,gemlite4,gemlite2] [--compile]
       [--context 512] [--new-tokens 128] [--layers 32] [--json OUT.json]
A variant that cannot run here is reported and skipped; the others still run.
"""
import argparse
import json
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F

DIM, LAYERS, HEADS, FFN, VOCAB = 4096, 32, 32, 11008, 32000
HEAD_DIM = DIM // HEADS


class Fp16Linear:
    def __init__(self, n, k, dtype):
        self.w = torch.randn(n, k, dtype=dtype, device="cuda") * 0.02

    def __call__(self, x):
        return F.linear(x, self.w)


class TinygemmInt4Linear:
    """torch._weight_int4pack_mm, group 128, bf16 activations (gpt-fast's WeightOnlyInt4Linear)."""

    def __init__(self, n, k, group=128):
        q = torch.randint(0, 16, (n, k), dtype=torch.int32, device="cuda")
        q_u8 = (q[:, ::2] << 4 | q[:, 1::2]).to(torch.uint8)
        self.w = torch.ops.aten._convert_weight_to_int4pack(q_u8, 8)
        self.sz = torch.rand(k // group, n, 2, dtype=torch.bfloat16, device="cuda") * 0.01
        self.group = group

    def __call__(self, x):
        shape = x.shape
        y = torch.ops.aten._weight_int4pack_mm(x.reshape(-1, shape[-1]), self.w, self.group, self.sz)
        return y.reshape(*shape[:-1], -1)


class GemliteLinear:
    def __init__(self, bits, n, k, group=128):
        from gemlite import DType, GemLiteLinear
        self.layer = GemLiteLinear(bits, group_size=group, in_features=k, out_features=n,
                                   input_dtype=DType.FP16, output_dtype=DType.FP16)
        q = torch.randint(0, 1 << bits, (n, k), dtype=torch.uint8, device="cuda")
        scales = torch.rand(n, k // group, dtype=torch.float16, device="cuda") * 0.01
        zeros = torch.full((n, k // group), (1 << bits) / 2, dtype=torch.float16, device="cuda")
        self.layer.pack(q, scales, zeros, None)

    def __call__(self, x):
        return self.layer(x)


def rms_norm(x, w, eps=1e-5):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * w


def rotary(x, cos, sin):
    # x: [1, heads, 1, head_dim]; rotate-half form (Hugging Face Llama layout)
    x1, x2 = x[..., : HEAD_DIM // 2], x[..., HEAD_DIM // 2:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class Model:
    def __init__(self, variant, layers, max_seq, dtype):
        def lin(n, k):
            if variant == "fp16":
                return Fp16Linear(n, k, dtype)
            if variant == "int4":
                return TinygemmInt4Linear(n, k)
            return GemliteLinear(int(variant[-1]), n, k)

        self.dtype = dtype
        self.embed = torch.randn(VOCAB, DIM, dtype=dtype, device="cuda") * 0.02
        self.layers = []
        for _ in range(layers):
            self.layers.append(dict(
                wqkv=lin(3 * DIM, DIM), wo=lin(DIM, DIM), w13=lin(2 * FFN, DIM), w2=lin(DIM, FFN),
                n1=torch.ones(DIM, dtype=dtype, device="cuda"),
                n2=torch.ones(DIM, dtype=dtype, device="cuda"),
                k=torch.randn(1, HEADS, max_seq, HEAD_DIM, dtype=dtype, device="cuda"),
                v=torch.randn(1, HEADS, max_seq, HEAD_DIM, dtype=dtype, device="cuda")))
        self.norm = torch.ones(DIM, dtype=dtype, device="cuda")
        # gpt-fast keeps lm_head in the activation dtype for int4; gemlite likewise here.
        self.lm_head = Fp16Linear(VOCAB, DIM, dtype)
        inv = 1.0 / (10000 ** (torch.arange(0, HEAD_DIM, 2, device="cuda").float() / HEAD_DIM))
        ang = torch.outer(torch.arange(max_seq, device="cuda").float(), inv)
        self.cos = ang.cos().to(dtype)  # [max_seq, head_dim / 2]
        self.sin = ang.sin().to(dtype)
        self.max_seq = max_seq

    def step(self, token, pos):
        """token: [1] int64, pos: [1] int64 (device tensors). Returns the next token [1]."""
        x = self.embed[token].view(1, 1, DIM)
        cos = self.cos[pos].view(1, 1, 1, HEAD_DIM // 2)
        sin = self.sin[pos].view(1, 1, 1, HEAD_DIM // 2)
        mask = (torch.arange(self.max_seq, device="cuda") <= pos).view(1, 1, 1, self.max_seq)
        for L in self.layers:
            h = rms_norm(x, L["n1"])
            q, k, v = L["wqkv"](h).split(DIM, dim=-1)
            q = rotary(q.view(1, 1, HEADS, HEAD_DIM).transpose(1, 2), cos, sin)
            k = rotary(k.view(1, 1, HEADS, HEAD_DIM).transpose(1, 2), cos, sin)
            v = v.view(1, 1, HEADS, HEAD_DIM).transpose(1, 2)
            L["k"].index_copy_(2, pos, k)
            L["v"].index_copy_(2, pos, v)
            a = F.scaled_dot_product_attention(q, L["k"], L["v"], attn_mask=mask)
            x = x + L["wo"](a.transpose(1, 2).reshape(1, 1, DIM))
            g, u = L["w13"](rms_norm(x, L["n2"])).split(FFN, dim=-1)
            x = x + L["w2"](F.silu(g) * u)
        logits = self.lm_head(rms_norm(x, self.norm))
        return torch.argmax(logits.view(-1)).view(1)


def weight_bytes(variant, layers):
    per_layer = 3 * DIM * DIM + DIM * DIM + 2 * FFN * DIM + DIM * FFN
    if variant == "fp16":
        w = 2 * per_layer
    else:
        bits = 4 if variant in ("int4", "gemlite4") else 2
        w = per_layer * bits // 8 + per_layer // 128 * 2 * 2  # packed + fp16 scale and zero per group
    return layers * w + 2 * VOCAB * DIM


def run_variant(variant, a):
    dtype = torch.bfloat16 if variant == "int4" else torch.float16
    max_seq = a.context + a.new_tokens
    torch.manual_seed(0)
    model = Model(variant, a.layers, max_seq, dtype)
    token = torch.tensor([5], device="cuda")
    pos = torch.tensor([a.context], device="cuda")
    step = torch.compile(model.step, fullgraph=True) if a.compile else model.step

    def body():
        nxt = step(token, pos)
        token.copy_(nxt)
        pos.add_(1)

    t0 = time.perf_counter()
    with torch.inference_mode():
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):  # warm-up: compilation, autotuning, lazy initialisation
                body()
        torch.cuda.current_stream().wait_stream(s)
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            body()
        torch.cuda.synchronize()
        setup_s = time.perf_counter() - t0
        steps = a.new_tokens - 1
        times = []
        for _ in range(a.repeats + 1):
            pos.fill_(a.context)
            token.fill_(5)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            for _ in range(steps):
                graph.replay()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        assert int(pos.item()) == a.context + steps
    t = statistics.median(times[1:])  # the first timed loop warms up
    return steps / t, setup_s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", default="fp16,int4,gemlite4,gemlite2")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--layers", type=int, default=LAYERS)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    props = torch.cuda.get_device_properties(0)
    print(f"device {props.name}, torch {torch.__version__}; Llama-2-7B shape, {a.layers} layers, "
          f"context {a.context}, {a.new_tokens} new tokens, batch 1, "
          f"{'torch.compile + ' if a.compile else ''}one CUDA graph per step")
    print("| peer | decode tok/s | weight GB read per token | setup s |\n|---|---|---|---|")
    rows = []
    for variant in a.variants.split(","):
        try:
            tps, setup = run_variant(variant, a)
        except Exception as e:  # a peer missing here is reported, the others still run
            msg = str(e).splitlines()[0][:160] if str(e) else ""
            print(f"| {variant} | not run: {type(e).__name__}: {msg} | | |")
            rows.append({"variant": variant, "error": f"{type(e).__name__}: {str(e)[:300]}"})
        else:
            gb = weight_bytes(variant, a.layers) / 1e9
            print(f"| {variant} | {tps:.1f} | {gb:.2f} | {setup:.0f} |")
            rows.append({"variant": variant, "decode_tokens_per_s": tps, "weight_gb": gb,
                         "setup_s": setup})
        sys.stdout.flush()
        torch.cuda.empty_cache()
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"device": props.name, "torch": torch.__version__, "compile": a.compile,
                       "context": a.context, "new_tokens": a.new_tokens, "layers": a.layers,
                       "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
