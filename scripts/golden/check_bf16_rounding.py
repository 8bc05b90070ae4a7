#!/usr/bin/env python3
"""Checks the list of bf16 rounding points in Tests/Fixtures/golden/README.md against torch itself.

Not a fixture generator: for each case directory it runs HF's DeepseekV3Attention in bf16 (as
references.py does) and, beside it, a float32 evaluation that rounds to bf16 exactly where the
README says torch rounds, and nowhere else. If the list is exact and complete the two agree bit
for bit, up to the rare element where a float32 sum taken in another order crosses a bf16 rounding
boundary. Prints, per case, how many output elements differ and by how many bf16 ulps.

    .venv-golden/bin/python scripts/golden/check_bf16_rounding.py [CASE_DIR ...]
"""

from __future__ import annotations

import glob
import os
import sys

import torch
import torch.nn.functional as F

from fixture_io import read_input, read_json, read_layer_attention
from gate_forms import gate_form
from hf_attention import causal_mask_for, hf_config_from_json, run_attention
from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3RotaryEmbedding
from weights import module_params

BF16 = torch.bfloat16


def r(x: torch.Tensor) -> torch.Tensor:
    """One rounding to bf16 (nearest even), kept in float32."""
    return x.to(BF16).to(torch.float32)


def linear(x, w, b=None):
    """bf16 GEMM: exact products, float32 accumulation, bias added in float32, one rounding."""
    y = x @ w.T
    return r(y + b if b is not None else y)


def rms_norm(x, w, eps):
    """DeepseekV3RMSNorm: normalised in float32, rounded (.to(input_dtype)), times weight, rounded."""
    n = r(x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))
    return r(w * n)


def rope(x, cos, sin, interleave):
    """apply_rotary_pos_emb(_interleave): each product and the sum rounded; cos/sin already bf16."""
    if interleave:
        c, s = cos[..., : cos.shape[-1] // 2], sin[..., : sin.shape[-1] // 2]
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.cat([r(r(x1 * c) - r(x2 * s)), r(r(x2 * c) + r(x1 * s))], dim=-1)
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return r(r(x * cos) + r(rotated * sin))


ACTS = {
    "sigmoid": lambda g: r(torch.sigmoid(g)),
    "softplus": lambda g: r(F.softplus(g, beta=1.0, threshold=20.0)),
    "scaled_softsign": lambda g: r(2.0 * g / r(1.0 + g.abs())),  # 2x and |x| are exact
}


def emulate_sequence(cfg, p, x, cos, sin, mask, scaling):
    """One sequence [T, hidden] (bf16 values in float32) through the rounding model."""
    t, heads = x.shape[0], cfg["num_attention_heads"]
    nope, rot, v_dim, rank = (cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"],
                              cfg["kv_lora_rank"])
    eps, form = cfg["rms_norm_eps"], gate_form(cfg)
    if cfg.get("q_lora_rank") is None:
        q_in = x
        q = linear(q_in, p["q_proj.weight"])
    else:
        q_in = rms_norm(linear(x, p["q_a_proj.weight"], p.get("q_a_proj.bias")), p["q_a_layernorm.weight"], eps)
        q = linear(q_in, p["q_b_proj.weight"])
    q = q.view(t, heads, nope + rot).transpose(0, 1)  # [H, T, qk]
    ckv = linear(x, p["kv_a_proj_with_mqa.weight"], p.get("kv_a_proj_with_mqa.bias"))
    kv_nope = rms_norm(ckv[:, :rank], p["kv_a_layernorm.weight"], eps)
    interleave = cfg.get("rope_interleave", True)
    q_rot = rope(q[..., nope:], cos, sin, interleave)
    k_rot = rope(ckv[:, rank:], cos, sin, interleave)  # [T, rope]
    kv = linear(kv_nope, p["kv_b_proj.weight"]).view(t, heads, nope + v_dim).transpose(0, 1)
    query = torch.cat((q[..., :nope], q_rot), dim=-1)
    key = torch.cat((kv[..., :nope], k_rot.expand(heads, t, rot)), dim=-1)
    scores = r(r(query @ key.transpose(1, 2)) * scaling)  # matmul, then * scaling (an f32 scalar)
    scores = r(scores + mask)
    probs = r(torch.softmax(scores, dim=-1))  # softmax(dtype=float32), then .to(bf16)
    out = r(probs @ kv[..., nope:]).transpose(0, 1).reshape(t, heads * v_dim)
    if form is not None:
        if form.placement == "separate":
            g = linear(x, p["gate.weight"], p.get("gate.bias"))
        else:
            g = linear(q_in, p["packed_gate.weight"])
        g = ACTS[form.act](g)
        if form.granularity == "head":
            g = g.repeat_interleave(v_dim, dim=-1)
        out = r(out * g)
    return linear(out, p["o_proj.weight"], p.get("o_proj.bias"))


@torch.no_grad()
def check(case_dir: str) -> tuple[int, int, int]:
    cfg = read_json(os.path.join(case_dir, "config.json"))
    layer = read_json(os.path.join(case_dir, "reference.json"))["layer_idx"]
    hidden, positions, cu = read_input(case_dir)
    params = module_params(cfg, read_layer_attention(case_dir, layer), "bf16")
    hf_out, derived = run_attention(cfg, params, layer, hidden, positions, cu, BF16)
    p = {k: v.to(torch.float32) for k, v in params.items()}
    hf_cfg = hf_config_from_json(cfg)
    rotary = DeepseekV3RotaryEmbedding(hf_cfg)
    outs = []
    for s, e in zip(cu[:-1], cu[1:]):
        x = hidden[s:e][None].to(BF16)
        cos, sin = (c[0].to(torch.float32) for c in rotary(x, positions[s:e][None]))
        mask = causal_mask_for(hf_cfg, x, positions[s:e][None])[0, 0].to(torch.float32)
        outs.append(emulate_sequence(cfg, p, x[0].to(torch.float32), cos, sin, mask, derived["softmax_scale"]))
    emulated = torch.cat(outs).to(BF16)
    differ = emulated != hf_out
    ulps = (ordered(emulated) - ordered(hf_out)).abs()
    return int(differ.sum()), differ.numel(), int(ulps.max())


def ordered(x: torch.Tensor) -> torch.Tensor:
    """bf16 bit patterns as integers whose difference counts the bf16 values in between."""
    bits = x.view(torch.int16).to(torch.int32)
    return torch.where(bits < 0, -(bits & 0x7FFF), bits)


def main(argv: list[str]) -> int:
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    root = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "Fixtures", "golden")
    dirs = argv or sorted(d for d in glob.glob(os.path.join(root, "*")) if os.path.isdir(d))
    for d in dirs:
        n, total, ulps = check(d)
        print(f"{os.path.basename(os.path.normpath(d)):38s} {n:4d} of {total:5d} elements differ (max {ulps} bf16 ulp)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
