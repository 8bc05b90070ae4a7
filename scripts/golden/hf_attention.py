"""HF transformers' own DeepseekV3Attention, with the output gate attached by hooks, run in a chosen dtype.

The attention math is HF's ``forward`` (eager attention, HF's causal mask, HF's rotary tables); this
module adds only the gate (gate_forms.py), which is not part of HF:

- the gate's input is captured by a forward pre-hook: on the attention module (hidden_states) for a
  separate gate, on the query projection (its input) for a packed one;
- a forward pre-hook on ``o_proj`` replaces its input ``attn_out`` by ``attn_out * act(gate(x))``.

Both hooks run in the module's dtype, so under bf16 the gate linear, the activation and the product
are bf16 operations exactly as torch performs them.
"""

from __future__ import annotations

import contextlib
import copy
import inspect

import torch
from torch import nn

from gate_forms import TORCH_ACTS, GateForm, apply_gate, gate_form
from transformers.models.deepseek_v3.configuration_deepseek_v3 import DeepseekV3Config
from transformers.models.deepseek_v3.modeling_deepseek_v3 import (
    DeepseekV3Attention,
    DeepseekV3RotaryEmbedding,
)

try:
    from transformers.masking_utils import create_causal_mask
except ImportError:  # older transformers
    create_causal_mask = None

DTYPES = {"f32": torch.float32, "f64": torch.float64, "bf16": torch.bfloat16}


def hf_config_from_json(cfg: dict) -> DeepseekV3Config:
    """Build the HF config from a config.json dict exactly as from_pretrained would."""
    d = copy.deepcopy(cfg)
    d.pop("quantization_config", None)  # weights are dequantized before they reach HF
    hf_cfg = DeepseekV3Config.from_dict(d)
    hf_cfg._attn_implementation = "eager"
    return hf_cfg


def attach_gate(attn: DeepseekV3Attention, form: GateForm, hidden: int) -> None:
    """Adds the gate's parameters to `attn` and the hooks that apply it; tensors go to attn.gate_stash."""
    act = TORCH_ACTS[form.act]
    stash = attn.gate_stash = {}
    if form.placement == "separate":
        attn.gate = nn.Linear(hidden, form.width, bias=form.gate_bias)
        gate_linear = attn.gate

        def capture_input(module, args, kwargs):
            stash["gate_input"] = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]

        attn.register_forward_pre_hook(capture_input, with_kwargs=True)
    else:
        proj = attn.q_proj if attn.q_lora_rank is None else attn.q_b_proj
        attn.packed_gate = nn.Linear(proj.in_features, form.width, bias=False)
        gate_linear = attn.packed_gate

        def capture_input(module, args):
            stash["gate_input"] = args[0]  # q_a_layernorm's output, or hidden_states without q LoRA

        def capture_query(module, args, output):
            stash["query"] = output

        proj.register_forward_pre_hook(capture_input)
        proj.register_forward_hook(capture_query)

    def gate_o_proj_input(module, args):
        (attn_out,) = args  # [B, T, H * v_head_dim], right before o_proj
        g = act(gate_linear(stash["gate_input"]))  # [B, T, H * per_head]
        gated = apply_gate(form, attn_out, g)
        stash.update(gate=g, attn_out=attn_out, gated=gated)
        return (gated,)

    attn.o_proj.register_forward_pre_hook(gate_o_proj_input)


def build_attention(cfg: dict, layer_idx: int, dtype: torch.dtype = torch.float32) -> DeepseekV3Attention:
    """HF DeepseekV3Attention in `dtype`, with the optional output gate attached via hooks."""
    hf_cfg = hf_config_from_json(cfg)
    attn = DeepseekV3Attention(hf_cfg, layer_idx=layer_idx)
    n_heads, v_dim, hidden = cfg["num_attention_heads"], cfg["v_head_dim"], cfg["hidden_size"]
    if cfg.get("use_bias", False) and attn.o_proj.bias is None:
        # use_bias gives o_proj a bias even when attention_bias is false.
        attn.o_proj = nn.Linear(n_heads * v_dim, hidden, bias=True)
    form = gate_form(cfg)
    if form is not None:
        attach_gate(attn, form, hidden)
    return attn.to(dtype).eval()


def causal_mask_for(hf_cfg, x: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
    """HF's own eager causal mask for one unpadded sequence (batch 1), in x's dtype."""
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


@contextlib.contextmanager
def float64_softmax():
    """HF's eager attention calls softmax(..., dtype=torch.float32); keep float64 input in float64."""
    original = nn.functional.softmax

    def softmax(x, dim=None, _stacklevel=3, dtype=None):
        if x.dtype == torch.float64 and dtype == torch.float32:
            dtype = torch.float64
        return original(x, dim=dim, _stacklevel=_stacklevel, dtype=dtype)

    nn.functional.softmax = softmax
    try:
        yield
    finally:
        nn.functional.softmax = original


def float64_rotary(rotary: DeepseekV3RotaryEmbedding, position_ids: torch.Tensor):
    """HF's rotary formula (cat(freqs, freqs), cos/sin times attention_scaling) evaluated in float64
    from HF's float32 inv_freq, instead of HF's float32 evaluation."""
    freqs = position_ids[..., None].to(torch.float64) * rotary.inv_freq.to(torch.float64)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos() * rotary.attention_scaling, emb.sin() * rotary.attention_scaling


@torch.no_grad()
def run_attention(cfg: dict, attn_params: dict, layer_idx: int, hidden: torch.Tensor,
                  positions: torch.Tensor, cu_seqlens: list[int], dtype: torch.dtype = torch.float32,
                  record: bool = False, exact_f64: bool = False):
    """Run HF attention in `dtype` per sequence (batch 1, own position ids) and concatenate.

    Parameters and hidden states are converted to `dtype` (round to nearest even for bf16).
    `exact_f64` (float64 only) also evaluates the rotary tables and the softmax in float64, where
    HF's float64 forward evaluates them in float32. With `record`, returns the gate hooks' tensors
    of each sequence as well.
    """
    assert not exact_f64 or dtype == torch.float64
    attn = build_attention(cfg, layer_idx, dtype)
    missing, unexpected = attn.load_state_dict(
        {k: v.to(dtype) for k, v in attn_params.items()}, strict=True)
    assert not missing and not unexpected
    hf_cfg = attn.config
    rotary = DeepseekV3RotaryEmbedding(hf_cfg)  # float32 inv_freq, as in HF's bf16 models too
    outs, records = [], []
    for s, e in zip(cu_seqlens[:-1], cu_seqlens[1:]):
        x = hidden[s:e][None].to(dtype)
        pos = positions[s:e][None]
        cos, sin = float64_rotary(rotary, pos) if exact_f64 else rotary(x, pos)
        mask = causal_mask_for(hf_cfg, x, pos)
        with float64_softmax() if exact_f64 else contextlib.nullcontext():
            out, _ = attn(hidden_states=x, position_embeddings=(cos, sin), attention_mask=mask)
        outs.append(out[0])
        if record and hasattr(attn, "gate_stash"):
            records.append(dict(attn.gate_stash))
    derived = {
        "softmax_scale": float(attn.scaling),
        "rope_attention_scaling": float(rotary.attention_scaling),
        "rope_inv_freq": [float(v) for v in rotary.inv_freq],
        "hf_rope_parameters": {k: v for k, v in dict(hf_cfg.rope_parameters).items()},
    }
    if record:
        return torch.cat(outs, 0), derived, records
    return torch.cat(outs, 0), derived
