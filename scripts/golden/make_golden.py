#!/usr/bin/env python3
"""Generate golden fixtures for the MLA attention tests from HF transformers.

The fixtures under Tests/Fixtures/golden/<case>/ are produced by Hugging Face
transformers' own ``DeepseekV3Attention`` (eager attention, causal mask) and
``DeepseekV3RotaryEmbedding``; this script never re-implements their math. The
only extra piece is the optional output gate (FastDeploy PR #7404):

    output = o_proj( attn_out * act(gate(hidden_states)) )

where ``attn_out`` is HF's attention output reshaped to [T, H * v_head_dim]
just before ``o_proj``, ``gate`` is ``nn.Linear(hidden, H * v_head_dim,
bias=use_bias)`` and ``act`` is ``sigmoid`` or
``scaled_softsign(x) = 2 * x / (1 + |x|)``. ``use_bias`` also gives ``o_proj``
a bias. The gate is attached to HF's module with forward pre-hooks, so the
attention itself is HF's ``forward``.

CI never runs this script; the fixtures it writes are committed. To regenerate
by hand, from the repository root:

    python3 -m venv .venv-golden
    .venv-golden/bin/pip install torch transformers safetensors numpy
    .venv-golden/bin/python scripts/golden/make_golden.py

(A CPU-only torch wheel is enough: add
``--index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple``
to the torch install.) The output is deterministic for a given torch /
transformers version; the versions used for the committed fixtures are listed
in Tests/Fixtures/golden/README.md.

Options: ``--out DIR`` (default Tests/Fixtures/golden), ``--only CASE`` (repeatable).
"""

from __future__ import annotations

import argparse
import copy
import glob
import inspect
import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
from torch import nn

import safetensors
import safetensors.numpy
import safetensors.torch
import transformers
from transformers.models.deepseek_v3.configuration_deepseek_v3 import DeepseekV3Config
from transformers.models.deepseek_v3.modeling_deepseek_v3 import (
    DeepseekV3Attention,
    DeepseekV3ForCausalLM,
    DeepseekV3RotaryEmbedding,
)

try:
    from transformers.masking_utils import create_causal_mask
except ImportError:  # older transformers
    create_causal_mask = None

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_OUT = os.path.join(REPO_ROOT, "Tests", "Fixtures", "golden")

ATTN_PARAM_NAMES = (
    "q_proj.weight",
    "q_a_proj.weight",
    "q_a_proj.bias",
    "q_a_layernorm.weight",
    "q_b_proj.weight",
    "kv_a_proj_with_mqa.weight",
    "kv_a_proj_with_mqa.bias",
    "kv_a_layernorm.weight",
    "kv_b_proj.weight",
    "o_proj.weight",
    "o_proj.bias",
    "gate.weight",
    "gate.bias",
)

# Tiny defaults shared by the hand-built cases.
BASE_CONFIG = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "model_type": "deepseek_v3",
    "hidden_size": 64,
    "num_attention_heads": 8,
    "num_key_value_heads": 8,
    "q_lora_rank": 32,
    "kv_lora_rank": 24,
    "qk_nope_head_dim": 16,
    "qk_rope_head_dim": 8,
    "v_head_dim": 16,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "rope_scaling": None,
    "rope_interleave": True,
    "attention_bias": False,
    "attention_dropout": 0.0,
    "max_position_embeddings": 256,
    "num_hidden_layers": 1,
    "vocab_size": 128,
    "use_gated_attn": False,
    "gated_attn_act": "sigmoid",
    "use_bias": False,
}

SAFETENSORS_METADATA = {"format": "pt"}


# --------------------------------------------------------------------------------------
# HF model construction
# --------------------------------------------------------------------------------------


def hf_config_from_json(cfg: dict) -> DeepseekV3Config:
    """Build the HF config from a config.json dict exactly as from_pretrained would."""
    d = copy.deepcopy(cfg)
    d.pop("quantization_config", None)  # weights are dequantized before they reach HF
    hf_cfg = DeepseekV3Config.from_dict(d)
    hf_cfg._attn_implementation = "eager"
    return hf_cfg


def scaled_softsign(x: torch.Tensor) -> torch.Tensor:
    return 2.0 * x / (1.0 + x.abs())


GATE_ACTS = {"sigmoid": torch.sigmoid, "scaled_softsign": scaled_softsign}


def build_attention(cfg: dict, layer_idx: int) -> DeepseekV3Attention:
    """HF DeepseekV3Attention in f32, with the optional output gate attached via hooks."""
    hf_cfg = hf_config_from_json(cfg)
    attn = DeepseekV3Attention(hf_cfg, layer_idx=layer_idx)
    n_heads, v_dim, hidden = cfg["num_attention_heads"], cfg["v_head_dim"], cfg["hidden_size"]
    use_bias = bool(cfg.get("use_bias", False))
    if use_bias and attn.o_proj.bias is None:
        # use_bias gives o_proj a bias even when attention_bias is false.
        attn.o_proj = nn.Linear(n_heads * v_dim, hidden, bias=True)
    if cfg.get("use_gated_attn", False):
        act = GATE_ACTS[cfg["gated_attn_act"]]
        attn.gate = nn.Linear(hidden, n_heads * v_dim, bias=use_bias)
        stash = {}

        def capture_hidden(module, args, kwargs):
            stash["hidden_states"] = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]

        def gate_o_proj_input(module, args):
            (attn_out,) = args  # [B, T, H * v_head_dim], right before o_proj
            g = act(attn.gate(stash["hidden_states"]))
            return (attn_out * g,)

        attn.register_forward_pre_hook(capture_hidden, with_kwargs=True)
        attn.o_proj.register_forward_pre_hook(gate_o_proj_input)
    return attn.float().eval()


def causal_mask_for(hf_cfg, x: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
    """HF's own eager causal mask for one unpadded sequence (batch 1)."""
    mask = None
    if create_causal_mask is not None:
        kw = dict(config=hf_cfg, inputs_embeds=x, attention_mask=None, position_ids=position_ids)
        params = inspect.signature(create_causal_mask).parameters
        kw["cache" if "cache" in params else "past_key_values"] = None
        if "allow_is_causal_skip" in params:
            kw["allow_is_causal_skip"] = False
        if "cache_position" in params:
            kw["cache_position"] = torch.arange(x.shape[1])
        mask = create_causal_mask(**kw)
    t = x.shape[1]
    if mask is None:
        mask = torch.full((t, t), torch.finfo(x.dtype).min).triu(1)[None, None]
    # Sanity: a [1, 1, T, T] additive mask that blocks exactly the future.
    assert mask.shape[-2:] == (t, t), mask.shape
    blocked = mask[0, 0] < -1e30 if mask.dtype != torch.bool else ~mask[0, 0]
    assert torch.equal(blocked, torch.ones(t, t, dtype=torch.bool).triu(1)), "unexpected mask"
    return mask


@torch.no_grad()
def run_attention(cfg: dict, attn_params: dict, layer_idx: int, hidden: torch.Tensor,
                  positions: torch.Tensor, cu_seqlens: list[int]):
    """Run HF attention per sequence (batch 1, own position ids) and concatenate."""
    attn = build_attention(cfg, layer_idx)
    missing, unexpected = attn.load_state_dict(
        {k: v.to(torch.float32) for k, v in attn_params.items()}, strict=True)
    assert not missing and not unexpected
    hf_cfg = attn.config
    rotary = DeepseekV3RotaryEmbedding(hf_cfg)
    outs = []
    for s, e in zip(cu_seqlens[:-1], cu_seqlens[1:]):
        x = hidden[s:e][None]
        pos = positions[s:e][None]
        cos, sin = rotary(x, pos)
        mask = causal_mask_for(hf_cfg, x, pos)
        out, _ = attn(hidden_states=x, position_embeddings=(cos, sin), attention_mask=mask)
        outs.append(out[0])
    derived = {
        "softmax_scale": float(attn.scaling),
        "rope_attention_scaling": float(rotary.attention_scaling),
        "rope_inv_freq": [float(v) for v in rotary.inv_freq],
        "hf_rope_parameters": {k: v for k, v in dict(hf_cfg.rope_parameters).items()},
    }
    return torch.cat(outs, 0), derived


# --------------------------------------------------------------------------------------
# Random weights
# --------------------------------------------------------------------------------------


def linear_std(fan_in: int) -> float:
    return min(0.2, max(0.05, 0.8 / math.sqrt(fan_in)))


def random_attn_params(cfg: dict, gen: torch.Generator) -> dict:
    """Moderate-scale random weights for every parameter of the (gated) attention module."""
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


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


def write_json(path: str, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")


def write_common(case_dir: str, hidden, positions, cu_seqlens, expected, derived, notes: dict):
    safetensors.torch.save_file(
        {"hidden_states": hidden.contiguous().to(torch.float32),
         "positions": positions.contiguous().to(torch.int64),
         "cu_seqlens": torch.tensor(cu_seqlens, dtype=torch.int64)},
        os.path.join(case_dir, "input.safetensors"), metadata=SAFETENSORS_METADATA)
    safetensors.torch.save_file(
        {"attn_output": expected.contiguous().to(torch.float32)},
        os.path.join(case_dir, "expected.safetensors"), metadata=SAFETENSORS_METADATA)
    info = dict(notes)
    info.update(derived)
    info["generated_with"] = {"torch": torch.__version__.split("+")[0],
                              "transformers": transformers.__version__}
    write_json(os.path.join(case_dir, "reference.json"), info)


def prefixed(layer_idx: int, params: dict) -> dict:
    return {f"model.layers.{layer_idx}.self_attn.{k}": v for k, v in params.items()}


def fresh_dir(out_root: str, case: str) -> str:
    d = os.path.join(out_root, case)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    return d


# --------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------


def simple_case(out_root, case, seed, overrides, cu_seqlens, layer_idx=0, pos_offset=0,
                extra_layers=(), extra_tensors=None, notes=None, drop_keys=()):
    gen = torch.Generator().manual_seed(seed)
    cfg = dict(BASE_CONFIG)
    cfg.update(overrides)
    for k in drop_keys:
        cfg.pop(k)
    # HF is built from exactly the dict that is written as config.json.
    build_cfg = cfg
    params = random_attn_params(build_cfg, gen)
    tensors = prefixed(layer_idx, params)
    for other in extra_layers:  # other layers' attention tensors: different random values
        tensors.update(prefixed(other, random_attn_params(build_cfg, gen)))
    for name, shape in (extra_tensors or {}).items():
        tensors[name] = 0.1 * torch.randn(shape, generator=gen)
    hidden, positions = make_inputs(cfg, gen, cu_seqlens, pos_offset)
    expected, derived = run_attention(build_cfg, params, layer_idx, hidden, positions, cu_seqlens)

    d = fresh_dir(out_root, case)
    write_json(os.path.join(d, "config.json"), cfg)
    safetensors.torch.save_file({k: v.contiguous() for k, v in sorted(tensors.items())},
                                os.path.join(d, "model.safetensors"), metadata=SAFETENSORS_METADATA)
    n = dict(notes or {})
    n["layer_idx"] = layer_idx
    write_common(d, hidden, positions, cu_seqlens, expected, derived, n)


def case_gated_sigmoid_bias(out_root):
    simple_case(out_root, "gated_sigmoid_bias", seed=1001,
                overrides={"use_gated_attn": True, "gated_attn_act": "sigmoid", "use_bias": True,
                           "attention_bias": False, "rope_interleave": True},
                cu_seqlens=[0, 5, 6, 13],
                notes={"description": "gated sigmoid, use_bias (gate.bias + o_proj.bias), "
                                      "interleaved rope, 3 sequences"})


def case_gated_softsign_noqlora_neox(out_root):
    simple_case(out_root, "gated_softsign_noqlora_neox", seed=1002,
                overrides={"use_gated_attn": True, "gated_attn_act": "scaled_softsign",
                           "use_bias": False, "q_lora_rank": None, "rope_interleave": False},
                cu_seqlens=[0, 9],
                notes={"description": "gated scaled_softsign, no bias, q_proj (q_lora_rank null), "
                                      "non-interleaved (neox) rope"})


def case_yarn_legacy_layer1(out_root):
    simple_case(out_root, "yarn_legacy_layer1", seed=1003,
                overrides={"use_gated_attn": True, "gated_attn_act": "sigmoid", "use_bias": False,
                           "attention_bias": True, "rope_interleave": True,
                           "max_position_embeddings": 2560, "num_hidden_layers": 2,
                           "vocab_size": 16,
                           "rope_scaling": {"type": "yarn", "factor": 40,
                                            "original_max_position_embeddings": 64,
                                            "beta_fast": 32, "beta_slow": 1,
                                            "mscale": 1.0, "mscale_all_dim": 1.0}},
                cu_seqlens=[0, 11], layer_idx=1, pos_offset=100, extra_layers=(0,),
                extra_tensors={"model.embed_tokens.weight": (16, 64),
                               "model.layers.1.mlp.gate_proj.weight": (16, 64)},
                notes={"description": "legacy rope_scaling yarn (factor 40), attention_bias, gated "
                                      "sigmoid, expected output is layer 1, positions 100..110; "
                                      "layer 0 attention and unrelated tensors must be ignored"})


def case_yarn_v5_ungated(out_root):
    rope_parameters = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 8,
                       "original_max_position_embeddings": 32, "beta_fast": 32, "beta_slow": 1,
                       "mscale": 0.707, "mscale_all_dim": 1.0}
    # config.json uses the transformers-5 form only: no legacy rope_theta / rope_scaling keys.
    simple_case(out_root, "yarn_v5_ungated", seed=1004,
                overrides={"use_gated_attn": False, "rope_parameters": rope_parameters},
                drop_keys=("rope_scaling", "rope_theta"), cu_seqlens=[0, 4, 12],
                notes={"description": "transformers-5 rope_parameters yarn (factor 8, mscale 0.707 "
                                      "!= mscale_all_dim 1.0), ungated, 2 sequences"})


def tiny_full_model_config() -> DeepseekV3Config:
    return DeepseekV3Config(
        vocab_size=128, hidden_size=64, intermediate_size=32, moe_intermediate_size=8,
        num_hidden_layers=1, num_attention_heads=8, num_key_value_heads=8,
        n_shared_experts=1, n_routed_experts=2, n_group=1, topk_group=1, num_experts_per_tok=1,
        first_k_dense_replace=0, q_lora_rank=32, kv_lora_rank=24, qk_nope_head_dim=16,
        qk_rope_head_dim=8, v_head_dim=16, max_position_embeddings=256, rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, rope_interleave=True,
        attention_bias=False, tie_word_embeddings=False)


def save_kwargs(**extra):
    params = inspect.signature(DeepseekV3ForCausalLM.save_pretrained).parameters
    if "safe_serialization" in params:
        extra["safe_serialization"] = True
    return extra


def load_layer_attn_from_dir(d: str, layer_idx: int) -> dict:
    files = sorted(glob.glob(os.path.join(d, "*.safetensors")))
    prefix = f"model.layers.{layer_idx}.self_attn."
    out = {}
    for fn in files:
        with safetensors.safe_open(fn, framework="pt") as f:
            for k in f.keys():
                if k.startswith(prefix):
                    out[k[len(prefix):]] = f.get_tensor(k)
    return out


def case_hf_save_pretrained(out_root):
    seed = 1005
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    hf_cfg = tiny_full_model_config()
    # HF's own bf16 construction path (keeps the MoE router gate in F32, as a bf16 load would).
    model = DeepseekV3ForCausalLM._from_config(hf_cfg, dtype=torch.bfloat16)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".self_attn." in name and name.endswith("layernorm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif ".self_attn." in name and p.dim() == 2:
                p.copy_(linear_std(p.shape[1]) * torch.randn(p.shape, generator=gen))
    model = model.eval()

    d = fresh_dir(out_root, "hf_save_pretrained")
    model.save_pretrained(d, **save_kwargs())
    ds = fresh_dir(out_root, "hf_sharded_index")
    model.save_pretrained(ds, **save_kwargs(max_shard_size="40KB"))
    for extra in ("generation_config.json",):
        for dd in (d, ds):
            if os.path.exists(os.path.join(dd, extra)):
                os.remove(os.path.join(dd, extra))

    # The single-file save must really be one BF16 file holding the whole model.
    assert os.path.exists(os.path.join(d, "model.safetensors"))
    assert not os.path.exists(os.path.join(d, "model.safetensors.index.json"))
    with safetensors.safe_open(os.path.join(d, "model.safetensors"), framework="pt") as f:
        keys = list(f.keys())
        assert f.get_tensor("model.layers.0.self_attn.q_b_proj.weight").dtype == torch.bfloat16
    assert "model.embed_tokens.weight" in keys and any(".mlp." in k for k in keys), keys

    # The sharded save: layer 0's attention tensors must span at least two shard files.
    with open(os.path.join(ds, "model.safetensors.index.json")) as f:
        weight_map = json.load(f)["weight_map"]
    attn_files = {fn for k, fn in weight_map.items() if k.startswith("model.layers.0.self_attn.")}
    assert len(attn_files) >= 2, f"attention not split across shards: {attn_files}"

    # Expected output from the bf16-rounded weights, upcast to f32, attention in f32.
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    params = load_layer_attn_from_dir(d, 0)
    params_sharded = load_layer_attn_from_dir(ds, 0)
    assert params.keys() == params_sharded.keys()
    assert all(torch.equal(params[k], params_sharded[k]) for k in params)
    cu_seqlens = [0, 3, 10]
    hidden, positions = make_inputs(cfg, gen, cu_seqlens)
    expected, derived = run_attention(cfg, params, 0, hidden, positions, cu_seqlens)
    for dd, desc in ((d, "HF save_pretrained of a tiny DeepseekV3ForCausalLM in bf16, single file"),
                     (ds, "same model saved with max_shard_size=40KB: sharded with "
                          "model.safetensors.index.json, layer 0 attention across shards")):
        write_common(dd, hidden, positions, cu_seqlens, expected, derived,
                     {"description": desc, "layer_idx": 0,
                      "layer0_attention_shards": sorted(attn_files) if dd == ds else None})


FP8_BLOCK = 128
FP8_MAX = float(torch.finfo(torch.float8_e4m3fn).max)  # 448


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


def dequantize_fp8_block(q: torch.Tensor, scale_inv: torch.Tensor) -> torch.Tensor:
    s = scale_inv.repeat_interleave(FP8_BLOCK, 0).repeat_interleave(FP8_BLOCK, 1)
    return q.to(torch.float32) * s[: q.shape[0], : q.shape[1]]


def case_fp8_block(out_root):
    seed = 1006
    gen = torch.Generator().manual_seed(seed)
    cfg = dict(BASE_CONFIG)
    # hidden 136 and q_lora_rank 136 (> 128, not a multiple of 128): q_a_proj is a 2x2 block grid
    # with partial edge blocks, q_b_proj 1x2, kv_a_proj 1x2, o_proj 2x1.
    cfg.update({"hidden_size": 136, "num_attention_heads": 4, "num_key_value_heads": 4,
                "q_lora_rank": 136, "kv_lora_rank": 32, "qk_nope_head_dim": 16,
                "qk_rope_head_dim": 8, "v_head_dim": 16, "rope_interleave": True,
                "use_gated_attn": True, "gated_attn_act": "sigmoid", "use_bias": False,
                "torch_dtype": "bfloat16",
                "quantization_config": {"quant_method": "fp8", "fmt": "e4m3",
                                        "activation_scheme": "dynamic",
                                        "weight_block_size": [FP8_BLOCK, FP8_BLOCK]}})
    raw = random_attn_params(cfg, gen)
    fp8_names = ("q_a_proj.weight", "q_b_proj.weight", "kv_a_proj_with_mqa.weight",
                 "kv_b_proj.weight", "o_proj.weight")
    stored, effective = {}, {}
    for name, w in raw.items():
        if name in fp8_names:
            q, s = quantize_fp8_block(w)
            stored[name] = q
            stored[name + "_scale_inv"] = s
            effective[name] = dequantize_fp8_block(q, s)
        else:  # layernorm weights and the gate stay BF16
            b = w.to(torch.bfloat16)
            stored[name] = b
            effective[name] = b.to(torch.float32)
    assert set(raw) == {"q_a_proj.weight", "q_a_layernorm.weight", "q_b_proj.weight",
                        "kv_a_proj_with_mqa.weight", "kv_a_layernorm.weight", "kv_b_proj.weight",
                        "o_proj.weight", "gate.weight"}, sorted(raw)
    cu_seqlens = [0, 6, 10]
    hidden, positions = make_inputs(cfg, gen, cu_seqlens)
    expected, derived = run_attention(cfg, effective, 0, hidden, positions, cu_seqlens)
    d = fresh_dir(out_root, "fp8_block")
    write_json(os.path.join(d, "config.json"), cfg)
    safetensors.torch.save_file({k: v.contiguous() for k, v in sorted(prefixed(0, stored).items())},
                                os.path.join(d, "model.safetensors"), metadata=SAFETENSORS_METADATA)
    write_common(d, hidden, positions, cu_seqlens, expected, derived,
                 {"description": "DeepSeek-V3 block FP8 (e4m3, 128x128 blocks, weight_scale_inv), "
                                 "gated sigmoid with BF16 gate, BF16 layernorms", "layer_idx": 0})


CASES = {
    "gated_sigmoid_bias": case_gated_sigmoid_bias,
    "gated_softsign_noqlora_neox": case_gated_softsign_noqlora_neox,
    "yarn_legacy_layer1": case_yarn_legacy_layer1,
    "yarn_v5_ungated": case_yarn_v5_ungated,
    "hf_save_pretrained": case_hf_save_pretrained,  # also writes hf_sharded_index
    "fp8_block": case_fp8_block,
}
ALL_DIRS = ["gated_sigmoid_bias", "gated_softsign_noqlora_neox", "yarn_legacy_layer1",
            "yarn_v5_ungated", "hf_save_pretrained", "hf_sharded_index", "fp8_block"]


# --------------------------------------------------------------------------------------
# Verification (reload only, recompute nothing)
# --------------------------------------------------------------------------------------


def load_any(path: str) -> dict:
    try:
        return safetensors.numpy.load_file(path)
    except Exception:  # BF16 / F8 have no numpy dtype: fall back to torch for the dtype/shape check
        with safetensors.safe_open(path, framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}


def verify(out_root: str, case: str) -> None:
    d = os.path.join(out_root, case)
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    inp = safetensors.numpy.load_file(os.path.join(d, "input.safetensors"))
    exp = safetensors.numpy.load_file(os.path.join(d, "expected.safetensors"))
    hs, pos, cu = inp["hidden_states"], inp["positions"], inp["cu_seqlens"]
    out = exp["attn_output"]
    t, hidden = cu[-1], cfg["hidden_size"]
    assert hs.dtype == np.float32 and hs.shape == (t, hidden), hs.shape
    assert pos.dtype == np.int64 and pos.shape == (t,), pos.shape
    assert cu.dtype == np.int64 and cu[0] == 0 and np.all(np.diff(cu) > 0)
    assert out.dtype == np.float32 and out.shape == (t, hidden), out.shape
    assert np.all(np.isfinite(out)), "non-finite output"
    std = float(out.std())
    assert std > 1e-3, f"output too small (std {std})"

    model_files = sorted(glob.glob(os.path.join(d, "model*.safetensors")))
    tensors = {}
    for fn in model_files:
        tensors.update(load_any(fn))
    with open(os.path.join(d, "reference.json")) as f:
        layer = json.load(f)["layer_idx"]
    p = f"model.layers.{layer}.self_attn."
    h, nope, rope, v = (cfg["num_attention_heads"], cfg["qk_nope_head_dim"],
                        cfg["qk_rope_head_dim"], cfg["v_head_dim"])
    want = {p + "kv_a_proj_with_mqa.weight": (cfg["kv_lora_rank"] + rope, hidden),
            p + "kv_a_layernorm.weight": (cfg["kv_lora_rank"],),
            p + "kv_b_proj.weight": (h * (nope + v), cfg["kv_lora_rank"]),
            p + "o_proj.weight": (hidden, h * v)}
    if cfg.get("q_lora_rank") is None:
        want[p + "q_proj.weight"] = (h * (nope + rope), hidden)
    else:
        want[p + "q_a_proj.weight"] = (cfg["q_lora_rank"], hidden)
        want[p + "q_a_layernorm.weight"] = (cfg["q_lora_rank"],)
        want[p + "q_b_proj.weight"] = (h * (nope + rope), cfg["q_lora_rank"])
    if cfg.get("use_gated_attn"):
        want[p + "gate.weight"] = (h * v, hidden)
    for name, shape in want.items():
        assert name in tensors, f"{case}: missing {name}"
        assert tuple(tensors[name].shape) == shape, f"{case}: {name} {tensors[name].shape} != {shape}"
    has_ob = (p + "o_proj.bias") in tensors
    assert has_ob == bool(cfg.get("attention_bias") or cfg.get("use_bias")), f"{case}: o_proj.bias"
    size = sum(os.path.getsize(os.path.join(d, fn)) for fn in os.listdir(d))
    print(f"{case:30s} T={t:3d} seqs={len(cu) - 1} files={len(os.listdir(d)):2d} "
          f"bytes={size:7d} out_std={std:.4f} out_absmax={float(np.abs(out).max()):.4f} "
          f"model_tensors={len(tensors)}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--only", action="append", choices=sorted(CASES))
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    selected = args.only or list(CASES)
    for name in selected:
        CASES[name](args.out)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"safetensors {safetensors.__version__}")
    for case in ALL_DIRS:
        if os.path.isdir(os.path.join(args.out, case)):
            verify(args.out, case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
