#!/usr/bin/env python3
"""The peers of pmpd-bench --mode kernel, per matrix at batch 1, on the same GPU in the same run.

What users could pick instead of our any-precision GEMV (issue 15), each timed the way pmpd-bench
times ours: weights rotated through copies totalling >= max(4 x L2, 200 MB) so every launch reads
from HBM, launches back to back, median over 5 repeats of the mean of `--iters` launches; here each
repeat is one CUDA-graph replay of `--iters` launches (the Python launch overhead is not in the
time). GB/s counts the bytes each kernel must read: packed weights, scales/zeros, x and y.
  - fp16: torch.nn.functional.linear (cuBLAS through PyTorch), the fp16 row of the issue
  - tinygemm int4, group 128: torch._weight_int4pack_mm (bf16; what gpt-fast and torchao use)
  - gemlite A16W4 / A16W2, group 128 (Triton; PyPI gemlite 0.6, HQQ-style asymmetric groups)
Usage: python3 bench/peers_kernel_bench.py [--shapes 4096x4096,22016x4096] [--json OUT.json]
A peer that cannot run here (gemlite not importable, an op missing) is reported and skipped.
"""
import argparse
import json
import statistics
import sys

import torch


def copy_bandwidth_gbs():
    """Device-to-device copy of 1 GiB: bytes read + written per second (pmpd-bench's measure)."""
    n = 1 << 30
    src = torch.empty(n, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(5):
        a.record()
        dst.copy_(src)
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    return 2 * n / statistics.median(times) / 1e9


def time_rotated(calls, iters):
    """calls: one closure per weight copy. Median over 5 graph replays of `iters` launches (us)."""
    for c in calls[:3]:
        c()  # warm-up: autotuning, lazy initialisation
    torch.cuda.synchronize()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for c in calls[:3]:
            c()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(iters):
            calls[i % len(calls)]()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(5):
        a.record()
        graph.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1e3 / iters)
    return statistics.median(times)


def copies_for(nbytes, rotate_bytes):
    return max(2, rotate_bytes // nbytes + 1)


def fp16_peer(n, k, rotate, iters):
    x = torch.randn(1, k, dtype=torch.float16, device="cuda")
    ws = [torch.randn(n, k, dtype=torch.float16, device="cuda") * 0.02
          for _ in range(copies_for(n * k * 2, rotate))]
    calls = [lambda w=w: torch.nn.functional.linear(x, w) for w in ws]
    return time_rotated(calls, iters), n * k * 2 + 2 * (k + n)


def tinygemm_peer(n, k, rotate, iters, group=128):
    x = torch.randn(1, k, dtype=torch.bfloat16, device="cuda")
    packed_bytes = n * k // 2
    sz_bytes = (k // group) * n * 2 * 2
    copies = []
    for _ in range(copies_for(packed_bytes + sz_bytes, rotate)):
        q = torch.randint(0, 16, (n, k), dtype=torch.int32, device="cuda")
        q_u8 = (q[:, ::2] << 4 | q[:, 1::2]).to(torch.uint8)  # [N, K/2], two nibbles a byte
        w = torch.ops.aten._convert_weight_to_int4pack(q_u8, 8)
        sz = torch.rand(k // group, n, 2, dtype=torch.bfloat16, device="cuda") * 0.01
        copies.append((w, sz))
    calls = [lambda w=w, sz=sz: torch.ops.aten._weight_int4pack_mm(x, w, group, sz)
             for w, sz in copies]
    return time_rotated(calls, iters), packed_bytes + sz_bytes + 2 * (k + n)


def gemlite_peer(bits, n, k, rotate, iters, group=128):
    import gemlite
    from gemlite import DType, GemLiteLinear
    x = torch.randn(1, k, dtype=torch.float16, device="cuda")
    packed_bytes = n * k * bits // 8
    sz_bytes = 2 * n * (k // group) * 2
    layers = []
    for _ in range(copies_for(packed_bytes + sz_bytes, rotate)):
        layer = GemLiteLinear(bits, group_size=group, in_features=k, out_features=n,
                              input_dtype=DType.FP16, output_dtype=DType.FP16)
        q = torch.randint(0, 1 << bits, (n, k), dtype=torch.uint8, device="cuda")
        scales = torch.rand(n, k // group, dtype=torch.float16, device="cuda") * 0.01
        zeros = torch.full((n, k // group), (1 << bits) / 2, dtype=torch.float16, device="cuda")
        layer.pack(q, scales, zeros, None)
        layers.append(layer)
    calls = [lambda l=l: l(x) for l in layers]
    return time_rotated(calls, iters), packed_bytes + sz_bytes + 2 * (k + n), gemlite.__version__


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", default="4096x4096,12288x4096,22016x4096,11008x4096,4096x11008")
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    props = torch.cuda.get_device_properties(0)
    bw = copy_bandwidth_gbs()
    rotate = max(4 * props.L2_cache_size, 200 << 20)
    print(f"device {props.name}, L2 {props.L2_cache_size >> 20} MB, measured copy bandwidth "
          f"{bw:.0f} GB/s; weights rotated over >= {rotate >> 20} MB; torch {torch.__version__}")
    rows = []
    print("| N x K | peer | bits | us | GB/s | % of BW |\n|---|---|---|---|---|---|")
    for shape in args.shapes.split(","):
        n, k = (int(v) for v in shape.split("x"))
        peers = [("fp16 F.linear (cuBLAS)", 16, lambda: fp16_peer(n, k, rotate, args.iters)),
                 ("tinygemm int4 g128", 4, lambda: tinygemm_peer(n, k, rotate, args.iters)),
                 ("gemlite A16W4 g128", 4, lambda: gemlite_peer(4, n, k, rotate, args.iters)[:2]),
                 ("gemlite A16W2 g128", 2, lambda: gemlite_peer(2, n, k, rotate, args.iters)[:2])]
        for name, bits, run in peers:
            try:
                us, nbytes = run()
            except Exception as e:  # a peer missing here is reported, the others still run
                print(f"| {n}x{k} | {name} | {bits} | - | - | not run: {type(e).__name__}: "
                      f"{str(e).splitlines()[0][:120] if str(e) else ''} |")
                rows.append({"n": n, "k": k, "peer": name, "bits": bits, "error": str(e)[:300]})
                continue
            gbs = nbytes / (us * 1e-6) / 1e9
            print(f"| {n}x{k} | {name} | {bits} | {us:.1f} | {gbs:.0f} | {100 * gbs / bw:.1f} |")
            rows.append({"n": n, "k": k, "peer": name, "bits": bits, "us": us, "gbs": gbs,
                         "bw_fraction": gbs / bw})
            sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": props.name, "bandwidth_gbs": bw, "torch": torch.__version__,
                       "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
