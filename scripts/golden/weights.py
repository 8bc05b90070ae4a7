"""Random weights and inputs for the hand-built cases, FP8 block quantization, and the conversion of
stored checkpoint tensors into the parameters HF's module runs with, per precision."""

from __future__ import annotations

import math

import torch

from gate_forms import from_checkpoint, gate_form
from hf_attention import DTYPES, build_attention

FP8_BLOCK = 128
FP8_MAX = float(torch.finfo(torch.float8_e4m3fn).max)  # 448
SCALE_SUFFIX = "_scale_inv"


def linear_std(fan_in: int) -> float:
    return min(0.2, max(0.05, 0.8 / math.sqrt(fan_in)))


def random_attn_params(cfg: dict, gen: torch.Generator) -> dict:
    """Moderate-scale random weights for every parameter of the (gated) attention module, in its
    state_dict order (HF's parameters, then the gate's)."""
    attn = build_attention(cfg, layer_idx=0)
    params = {}
    for name, p in attn.state_dict().items():
        if name.endswith("layernorm.weight"):
            v = 1.0 + 0.1 * torch.randn(p.shape, generator=gen)
        elif name.endswith(".bias"):
            v = 0.05 * torch.randn(p.shape, generator=gen)
        else:
            v = linear_std(p.shape[1]) * torch.randn(p.shape, generator=gen)
        params[name] = v.to(torch.float32)
    return params


def make_inputs(cfg: dict, gen: torch.Generator, cu_seqlens: list[int], pos_offset: int = 0):
    t = cu_seqlens[-1]
    hidden = torch.randn(t, cfg["hidden_size"], generator=gen)
    positions = torch.cat([torch.arange(e - s) + pos_offset
                           for s, e in zip(cu_seqlens[:-1], cu_seqlens[1:])]).to(torch.int64)
    return hidden, positions


def quantize_fp8_block(w: torch.Tensor):
    """Block-wise e4m3 quantization; returns (fp8 weight, scale_inv) with w ~= fp8 * scale_inv."""
    out_f, in_f = w.shape
    nb_o, nb_i = -(-out_f // FP8_BLOCK), -(-in_f // FP8_BLOCK)
    scale_inv = torch.empty(nb_o, nb_i, dtype=torch.float32)
    q = torch.empty(out_f, in_f, dtype=torch.float8_e4m3fn)
    for bo in range(nb_o):
        for bi in range(nb_i):
            sl = (slice(bo * FP8_BLOCK, (bo + 1) * FP8_BLOCK), slice(bi * FP8_BLOCK, (bi + 1) * FP8_BLOCK))
            blk = w[sl]
            s = blk.abs().max().clamp(min=1e-12) / FP8_MAX
            scale_inv[bo, bi] = s
            q[sl] = (blk / s).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return q, scale_inv


def dequantize_fp8_block(q: torch.Tensor, scale_inv: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """w = fp8 * scale_inv[row / 128, col / 128], multiplied in `dtype`. In float64 the product of an
    e4m3 value (4 significant bits) and an f32 scale (24) is exact; in float32 it is rounded once."""
    s = scale_inv.repeat_interleave(FP8_BLOCK, 0).repeat_interleave(FP8_BLOCK, 1)
    return q.to(dtype) * s[: q.shape[0], : q.shape[1]].to(dtype)


def module_params(cfg: dict, stored: dict, precision: str) -> dict:
    """Stored attention tensors -> the parameters HF's module is loaded with for `precision`.

    f64:  every tensor widened exactly; FP8 weights dequantized exactly in float64.
    f32:  widened to float32; FP8 weights dequantized in float32 (the committed f32 goldens).
    bf16: what a bf16 engine holds: a BF16 tensor as is, an F32 tensor rounded to nearest even,
          an FP8 weight dequantized in float32 and then rounded to bf16.
    The packed query projection of a packed gate is split into query rows and gate rows.
    """
    out = {}
    for name, t in stored.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        scale = stored.get(name + SCALE_SUFFIX)
        if scale is not None:
            w = dequantize_fp8_block(t, scale, torch.float64 if precision == "f64" else torch.float32)
        else:
            w = t
        out[name] = w.to(DTYPES[precision])
    return from_checkpoint(gate_form(cfg), out)
