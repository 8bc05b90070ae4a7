#!/usr/bin/env python3
"""The same tensor-parallel MLA forward as `mla-tp bench`, in PyTorch with torch.distributed (gloo).

A baseline to hold mla-tp's prefill against, run by hand (never by CI). Each rank builds only
its own shard, exactly as mla-tp does:

    q_a_proj, kv_a_proj_with_mqa, both RMSNorms     replicated
    q_b_proj, kv_b_proj, gate                        column-parallel (rank r's heads)
    o_proj                                           row-parallel, then one all_reduce (sum)

and runs `o_proj(attn(x) * sigmoid(gate(x)))` in f32 (or, with `--dtype bfloat16`, in bf16 as a bf16
engine does: weights and activations bf16, RMSNorm and softmax in f32 inside, the all_reduce on
the bf16 partial sums) on one causal sequence of T tokens,
with interleaved RoPE on q_rope and the shared k_rope, and causal softmax attention through
`torch.nn.functional.scaled_dot_product_attention`. Weights are random (the timing does not
depend on their values). One intra-op thread per rank by default, as mla-tp uses one BLAS
thread per rank.

Run from the repository root, with torch in a virtual environment (see scripts/golden/make_golden.py
for how to make one; a CPU-only wheel is enough):

    .venv-golden/bin/torchrun --nproc_per_node 2 scripts/bench/torch_gloo_baseline.py --tokens 256
    .venv-golden/bin/python scripts/bench/torch_gloo_baseline.py --nproc 2 --tokens 256     # mp.spawn
    .venv-golden/bin/python scripts/bench/torch_gloo_baseline.py --nproc 2 --dtype bfloat16 --json > torch-bf16.json
    mpirun -n 2 mla-tp bench --preset deepseek-v3 --dtype bf16 --torch-baseline torch-bf16.json

It prints, per rank, the median/min/max forward time over --repeat timed forwards (after
--warmup), the all_reduce time inside the forward (timed after a barrier, as mla-tp bench does),
and GFLOP/s over the GEMM FLOPs that mla-tp counts for the same forward (its 64-row causal
blocking), so the two rates are comparable. --json prints one JSON document instead.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

# DeepSeek-V3 attention dimensions (its config.json).
PRESETS = {
    "deepseek-v3": dict(hidden=7168, heads=128, q_lora=1536, kv_lora=512, nope=128, rope=64, v=128),
    "deepseek-v2-lite": dict(hidden=2048, heads=16, q_lora=None, kv_lora=512, nope=128, rope=64, v=128),
    "tiny": dict(hidden=256, heads=8, q_lora=96, kv_lora=64, nope=32, rope=16, v=32),
}


def gemm_flops(m: int, n: int, k: int) -> int:
    return 2 * m * n * k


def mla_tp_flops(c: dict, tokens: int, tp: int, block: int = 64) -> int:
    """The GEMM FLOPs mla-tp counts for one rank's prefill of one sequence (FlopModel.prefill)."""
    hl, T = c["heads"] // tp, tokens
    dq = c["nope"] + c["rope"]
    total = 0
    if c["q_lora"]:
        total += gemm_flops(T, c["q_lora"], c["hidden"]) + gemm_flops(T, hl * dq, c["q_lora"])
    else:
        total += gemm_flops(T, hl * dq, c["hidden"])
    total += gemm_flops(T, c["kv_lora"] + c["rope"], c["hidden"])
    total += gemm_flops(T, hl * (c["nope"] + c["v"]), c["kv_lora"])
    total += gemm_flops(T, hl * c["v"], c["hidden"])            # gate
    total += gemm_flops(T, c["hidden"], hl * c["v"])            # o_proj
    i0 = 0
    while i0 < T:
        rows = min(block, T - i0)
        keys = i0 + rows
        total += hl * (2 * rows * keys * dq + 2 * rows * c["v"] * keys)
        i0 += rows
    return total


class ShardedMLA:
    """Rank `rank`'s part of the layer: replicated latents, column-parallel heads, row-parallel o_proj."""

    def __init__(self, c: dict, rank: int, tp: int, seed: int = 1234, dtype: torch.dtype = torch.float32):
        g = torch.Generator().manual_seed(seed + rank)
        self.dtype = dtype
        hl = c["heads"] // tp
        self.c, self.hl = c, hl
        dq = c["nope"] + c["rope"]

        def w(out_f: int, in_f: int) -> torch.Tensor:
            return (torch.randn(out_f, in_f, generator=g) / math.sqrt(in_f)).to(dtype)

        if c["q_lora"]:
            self.q_a = w(c["q_lora"], c["hidden"])
            self.q_a_norm = torch.ones(c["q_lora"], dtype=dtype)
            self.q_b = w(hl * dq, c["q_lora"])
        else:
            self.q_proj = w(hl * dq, c["hidden"])
        self.kv_a = w(c["kv_lora"] + c["rope"], c["hidden"])
        self.kv_a_norm = torch.ones(c["kv_lora"], dtype=dtype)
        self.kv_b = w(hl * (c["nope"] + c["v"]), c["kv_lora"])
        self.gate = w(hl * c["v"], c["hidden"])
        self.gate_bias = torch.zeros(hl * c["v"], dtype=dtype)
        self.o_proj = w(c["hidden"], hl * c["v"])                  # [hidden, H/tp·v]: rank r's columns
        self.scale = dq ** -0.5
        inv = 1.0 / (10000.0 ** (torch.arange(0, c["rope"], 2, dtype=torch.float32) / c["rope"]))
        self.inv_freq = inv

    @staticmethod
    def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
        # As transformers' DeepseekV3RMSNorm: the statistics in f32, the result in the input's dtype.
        h = x.float()
        return weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)

    def rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        # Interleaved pairs (x[2i], x[2i+1]), as DeepSeek-V3's rope_interleave.
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)

    def forward(self, x: torch.Tensor, timings: dict) -> torch.Tensor:
        c, hl, T = self.c, self.hl, x.shape[0]
        nope, rope, v, lora = c["nope"], c["rope"], c["v"], c["kv_lora"]
        if c["q_lora"]:
            q = self.rms_norm(x @ self.q_a.T, self.q_a_norm) @ self.q_b.T
        else:
            q = x @ self.q_proj.T
        q = q.view(T, hl, nope + rope)
        kva = x @ self.kv_a.T
        latent, k_rope = kva[:, :lora], kva[:, lora:]
        kv = (self.rms_norm(latent, self.kv_a_norm) @ self.kv_b.T).view(T, hl, nope + v)
        k_nope, value = kv[..., :nope], kv[..., nope:]

        pos = torch.arange(T, dtype=torch.float32)
        freqs = torch.outer(pos, self.inv_freq)
        cos, sin = freqs.cos().to(self.dtype), freqs.sin().to(self.dtype)
        q_rope = self.rope(q[..., nope:], cos[:, None, :], sin[:, None, :])
        k_rope = self.rope(k_rope, cos, sin)[:, None, :].expand(T, hl, rope)

        query = torch.cat((q[..., :nope], q_rope), dim=-1).transpose(0, 1)          # [hl, T, dq]
        key = torch.cat((k_nope, k_rope), dim=-1).transpose(0, 1)                   # [hl, T, dq]
        attn = F.scaled_dot_product_attention(query, key, value.transpose(0, 1), is_causal=True, scale=self.scale)
        attn = attn.transpose(0, 1).reshape(T, hl * v)                              # [T, H/tp·v]

        attn = attn * torch.sigmoid(x @ self.gate.T + self.gate_bias)              # column-parallel gate
        partial = attn @ self.o_proj.T                                              # [T, hidden] partial sum
        if dist.get_world_size() > 1:
            t0 = time.perf_counter()
            dist.barrier()
            t1 = time.perf_counter()
            dist.all_reduce(partial)
            t2 = time.perf_counter()
            timings["wait"] = t1 - t0
            timings["allreduce"] = t2 - t1
        return partial


def stats(xs: list[float]) -> dict:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "samples": xs}


def run(rank: int, tp: int, args: argparse.Namespace) -> None:
    if not dist.is_initialized():
        dist.init_process_group("gloo", rank=rank, world_size=tp)
    torch.set_num_threads(args.threads)
    c = PRESETS[args.preset]
    dtype = getattr(torch, args.dtype)
    layer = ShardedMLA(c, rank, tp, dtype=dtype)
    x = torch.randn(args.tokens, c["hidden"], generator=torch.Generator().manual_seed(7)).to(dtype)
    totals, reduces, waits = [], [], []
    with torch.inference_mode():
        for i in range(args.warmup + args.repeat):
            timings = {"allreduce": 0.0, "wait": 0.0}
            dist.barrier()
            t0 = time.perf_counter()
            layer.forward(x, timings)
            t = time.perf_counter() - t0
            if i >= args.warmup:
                totals.append(t)
                reduces.append(timings["allreduce"])
                waits.append(timings["wait"])
    flops = mla_tp_flops(c, args.tokens, tp)
    mine = {"rank": rank, "total_seconds": stats(totals), "allreduce_seconds": stats(reduces),
            "wait_seconds": stats(waits), "flops": flops,
            "gflops_per_second": flops / statistics.median(totals) / 1e9}
    gathered: list = [None] * tp
    dist.all_gather_object(gathered, mine)
    if rank == 0:
        doc = {"baseline": "torch+gloo", "torch": torch.__version__, "preset": args.preset, "tp": tp,
               "tokens": args.tokens, "dtype": args.dtype, "threads_per_rank": args.threads, "warmup": args.warmup,
               "repeat": args.repeat, "ranks": gathered}
        if args.json:
            print(json.dumps(doc, indent=2))
        else:
            print(f"torch {torch.__version__} + gloo: {args.preset}, tp={tp}, T={args.tokens} prefill, {args.dtype}, "
                  f"{args.threads} thread(s) per rank, {args.warmup} warm-up + {args.repeat} timed forwards")
            print("rank  forward ms median [min-max]   allreduce ms  wait ms  GFLOP   GFLOP/s")
            for r in gathered:
                tt = r["total_seconds"]
                print(f"{r['rank']:<5} {tt['median']*1e3:8.1f} [{tt['min']*1e3:.1f}-{tt['max']*1e3:.1f}]"
                      f"      {r['allreduce_seconds']['median']*1e3:8.3f}  {r['wait_seconds']['median']*1e3:7.3f}"
                      f"  {r['flops']/1e9:6.3f}  {r['gflops_per_second']:6.1f}")
    dist.barrier()
    dist.destroy_process_group()


def spawned(rank: int, tp: int, args: argparse.Namespace) -> None:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(args.port))
    run(rank, tp, args)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="deepseek-v3", choices=sorted(PRESETS))
    p.add_argument("--tokens", type=int, default=256)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per rank")
    p.add_argument("--nproc", type=int, default=2, help="ranks to spawn when not under torchrun")
    p.add_argument("--port", type=int, default=29533)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="element type of weights and activations (bfloat16: the all_reduce sums bf16 partials)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:          # under torchrun
        run(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), args)
    else:
        mp.spawn(spawned, args=(args.nproc, args), nprocs=args.nproc, join=True)


if __name__ == "__main__":
    main()
