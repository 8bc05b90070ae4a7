"""The output-gate forms, their tensor layouts, and a float64 check of the layouts by index arithmetic.

A gated attention computes ``o_proj(attn_out * act(g))`` where ``attn_out`` is HF's attention output
[T, H * v_head_dim] (head-major) and ``g`` is a linear function of the gate's input:

granularity  element: g is [T, H * v]; channel (h, j) is scaled by g[:, h * v + j]
             head:    g is [T, H];     all v channels of head h are scaled by g[:, h]
placement    separate: ``gate.weight`` [H * w, hidden] (+ ``gate.bias`` [H * w] with use_bias),
                       input hidden_states (w = v for element, 1 for head)
             packed:   the query projection (``q_b_proj`` with q LoRA, else ``q_proj``) holds, per head h,
                       that head's qk_head_dim query rows (nope then rope) followed by its w gate rows:
                       [H * (qk_head_dim + w), in]; the gate's input is the projection's input
                       (q_a_layernorm's output, or hidden_states); no gate bias
act          sigmoid | scaled_softsign (2x / (1 + |x|)) | softplus (beta 1, threshold 20)

``use_bias`` also gives o_proj a bias in every form.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

ACTIVATIONS = ("sigmoid", "scaled_softsign", "softplus")
GRANULARITIES = ("element", "head")
PLACEMENTS = ("separate", "packed")


def scaled_softsign(x: torch.Tensor) -> torch.Tensor:
    return 2.0 * x / (1.0 + x.abs())


def softplus(x: torch.Tensor) -> torch.Tensor:
    return F.softplus(x, beta=1.0, threshold=20.0)


TORCH_ACTS = {"sigmoid": torch.sigmoid, "scaled_softsign": scaled_softsign, "softplus": softplus}

NUMPY_ACTS = {
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "scaled_softsign": lambda x: 2.0 * x / (1.0 + np.abs(x)),
    "softplus": lambda x: np.where(x > 20.0, x, np.log1p(np.exp(np.minimum(x, 20.0)))),
}


@dataclass(frozen=True)
class GateForm:
    act: str
    granularity: str
    placement: str
    use_bias: bool
    heads: int
    v_head_dim: int
    qk_head_dim: int
    q_name: str  # the query projection: q_b_proj (q LoRA) or q_proj

    @property
    def per_head(self) -> int:
        """Gate rows (outputs) per head: v_head_dim for element-wise, 1 for head-wise."""
        return self.v_head_dim if self.granularity == "element" else 1

    @property
    def width(self) -> int:
        return self.heads * self.per_head

    @property
    def gate_bias(self) -> bool:
        return self.use_bias and self.placement == "separate"

    @property
    def packed_stride(self) -> int:
        return self.qk_head_dim + self.per_head


def gate_form(cfg: dict) -> GateForm | None:
    """The gate a config.json declares, or None when ungated. Absent keys mean element / separate."""
    if not cfg.get("use_gated_attn", False):
        return None
    form = GateForm(act=cfg.get("gated_attn_act", "sigmoid"),
                    granularity=cfg.get("gated_attn_granularity", "element"),
                    placement=cfg.get("gated_attn_placement", "separate"),
                    use_bias=bool(cfg.get("use_bias", False)),
                    heads=cfg["num_attention_heads"], v_head_dim=cfg["v_head_dim"],
                    qk_head_dim=cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"],
                    q_name="q_proj.weight" if cfg.get("q_lora_rank") is None else "q_b_proj.weight")
    assert form.act in ACTIVATIONS, form.act
    assert form.granularity in GRANULARITIES, form.granularity
    assert form.placement in PLACEMENTS, form.placement
    return form


def apply_gate(form: GateForm, attn_out: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """attn_out [..., H * v] scaled by the activated gate g [..., H * per_head], in attn_out's dtype."""
    if form.granularity == "element":
        return attn_out * g
    shape = attn_out.shape
    return (attn_out.view(*shape[:-1], form.heads, form.v_head_dim) * g[..., None]).reshape(shape)


# --------------------------------------------------------------------------------------
# Packing (the module holds query rows and gate rows apart; the checkpoint holds them packed)
# --------------------------------------------------------------------------------------


def pack_interleaved(form: GateForm, q_rows: torch.Tensor, gate_rows: torch.Tensor) -> torch.Tensor:
    """[H * qk, in] and [H * w, in] -> per head [q_h | g_h]: [H * (qk + w), in] (Qwen3-Next order)."""
    q = q_rows.reshape(form.heads, form.qk_head_dim, -1)
    g = gate_rows.reshape(form.heads, form.per_head, -1)
    return torch.cat([q, g], dim=1).reshape(form.heads * form.packed_stride, -1)


def unpack_interleaved(form: GateForm, packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse of pack_interleaved: (query rows [H * qk, in], gate rows [H * w, in])."""
    per = packed.reshape(form.heads, form.packed_stride, -1)
    q = per[:, : form.qk_head_dim].reshape(form.heads * form.qk_head_dim, -1)
    g = per[:, form.qk_head_dim:].reshape(form.width, -1)
    return q.contiguous(), g.contiguous()


def concatenate(q_rows: torch.Tensor, gate_rows: torch.Tensor) -> torch.Tensor:
    """The wrong layout: [all query rows | all gate rows], the same shape as the packed tensor."""
    return torch.cat([q_rows, gate_rows], dim=0)


def to_checkpoint(form: GateForm | None, params: dict, layout: str = "interleaved") -> dict:
    """Module-form params (``packed_gate.weight`` apart) -> the tensors a checkpoint stores."""
    if form is None or form.placement == "separate":
        return dict(params)
    out = {k: v for k, v in params.items() if k != "packed_gate.weight"}
    q, g = params[form.q_name], params["packed_gate.weight"]
    out[form.q_name] = pack_interleaved(form, q, g) if layout == "interleaved" else concatenate(q, g)
    return out


def from_checkpoint(form: GateForm | None, stored: dict) -> dict:
    """Checkpoint tensors -> module-form params: a packed query projection is split by heads."""
    if form is None or form.placement == "separate":
        return dict(stored)
    out = dict(stored)
    out[form.q_name], out["packed_gate.weight"] = unpack_interleaved(form, stored[form.q_name])
    return out


# --------------------------------------------------------------------------------------
# Float64 hand check: the gate and the gated o_proj input by explicit index arithmetic
# --------------------------------------------------------------------------------------


def hand_gate(form: GateForm, stored: dict, gate_input: np.ndarray) -> np.ndarray:
    """act(x · W_gᵀ + b) [T, H * w] from the checkpoint tensors, rows picked one by one."""
    if form.placement == "packed":
        w = stored[form.q_name]
        rows = [h * form.packed_stride + form.qk_head_dim + j
                for h in range(form.heads) for j in range(form.per_head)]
        bias = np.zeros(form.width)
    else:
        w = stored["gate.weight"]
        rows = list(range(form.width))
        bias = stored["gate.bias"] if form.gate_bias else np.zeros(form.width)
    pre = gate_input @ w[rows].T + bias
    return NUMPY_ACTS[form.act](pre)


def hand_query(form: GateForm, stored: dict, q_input: np.ndarray) -> np.ndarray:
    """The query projection's output [T, H * qk] from the packed tensor, rows picked one by one."""
    w = stored[form.q_name]
    rows = [h * form.packed_stride + i for h in range(form.heads) for i in range(form.qk_head_dim)]
    return q_input @ w[rows].T


def hand_gated(form: GateForm, attn_out: np.ndarray, g: np.ndarray) -> np.ndarray:
    """attn_out [T, H * v] with channel (h, j) scaled by its gate value."""
    out = np.empty_like(attn_out)
    for h in range(form.heads):
        for j in range(form.v_head_dim):
            col = h * form.v_head_dim + j
            gcol = h * form.per_head + (j if form.granularity == "element" else 0)
            out[:, col] = attn_out[:, col] * g[:, gcol]
    return out


def hand_check(form: GateForm, stored: dict, records: list[dict]) -> dict:
    """Compares the hooks' float64 tensors (per sequence) with the hand computation; max |Δ| of each."""
    w = {k: v.to(torch.float64).numpy() for k, v in stored.items()}
    worst = {"gate": 0.0, "gated_o_proj_input": 0.0}
    if form.placement == "packed":
        worst["query_rows"] = 0.0
    for rec in records:
        x = rec["gate_input"][0].numpy()
        g = hand_gate(form, w, x)
        worst["gate"] = max(worst["gate"], float(np.abs(g - rec["gate"][0].numpy()).max()))
        gated = hand_gated(form, rec["attn_out"][0].numpy(), g)
        worst["gated_o_proj_input"] = max(worst["gated_o_proj_input"],
                                          float(np.abs(gated - rec["gated"][0].numpy()).max()))
        if form.placement == "packed":
            q = hand_query(form, w, x)
            worst["query_rows"] = max(worst["query_rows"], float(np.abs(q - rec["query"][0].numpy()).max()))
    for k, v in worst.items():
        assert v < 1e-12, f"hand check of the gate layout failed: {k} differs by {v}"
    return worst
