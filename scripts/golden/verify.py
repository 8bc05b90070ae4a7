"""Checks every case directory as the Swift side will read it (reload only, recompute nothing)."""

from __future__ import annotations

import glob
import os

import torch

from fixture_io import CONCATENATED_FILE, checkpoint_files, load_tensors, read_json
from gate_forms import gate_form

OUTPUT_FILES = {"expected.safetensors": torch.float32, "expected_f64.safetensors": torch.float64,
                "expected_bf16.safetensors": torch.bfloat16}


def expected_shapes(cfg: dict, p: str) -> dict:
    """Tensor name -> shape every checkpoint of `cfg` must hold (prefix `p`)."""
    hidden = cfg["hidden_size"]
    h, nope, rope, v = (cfg["num_attention_heads"], cfg["qk_nope_head_dim"],
                        cfg["qk_rope_head_dim"], cfg["v_head_dim"])
    form = gate_form(cfg)
    packed_rows = form.per_head if form is not None and form.placement == "packed" else 0
    want = {p + "kv_a_proj_with_mqa.weight": (cfg["kv_lora_rank"] + rope, hidden),
            p + "kv_a_layernorm.weight": (cfg["kv_lora_rank"],),
            p + "kv_b_proj.weight": (h * (nope + v), cfg["kv_lora_rank"]),
            p + "o_proj.weight": (hidden, h * v)}
    if cfg.get("q_lora_rank") is None:
        want[p + "q_proj.weight"] = (h * (nope + rope + packed_rows), hidden)
    else:
        want[p + "q_a_proj.weight"] = (cfg["q_lora_rank"], hidden)
        want[p + "q_a_layernorm.weight"] = (cfg["q_lora_rank"],)
        want[p + "q_b_proj.weight"] = (h * (nope + rope + packed_rows), cfg["q_lora_rank"])
    if form is not None and form.placement == "separate":
        want[p + "gate.weight"] = (form.width, hidden)
        if form.gate_bias:
            want[p + "gate.bias"] = (form.width,)
    return want


def check_checkpoint(case: str, cfg: dict, tensors: dict, p: str) -> None:
    for name, shape in expected_shapes(cfg, p).items():
        assert name in tensors, f"{case}: missing {name}"
        assert tuple(tensors[name].shape) == shape, f"{case}: {name} {tuple(tensors[name].shape)} != {shape}"
    form = gate_form(cfg)
    has_gate = (p + "gate.weight") in tensors
    assert has_gate == (form is not None and form.placement == "separate"), f"{case}: gate.weight"
    assert ((p + "gate.bias") in tensors) == (form is not None and form.gate_bias), f"{case}: gate.bias"
    has_ob = (p + "o_proj.bias") in tensors
    assert has_ob == bool(cfg.get("attention_bias") or cfg.get("use_bias")), f"{case}: o_proj.bias"


def verify(out_root: str, case: str) -> None:
    d = os.path.join(out_root, case)
    cfg = read_json(os.path.join(d, "config.json"))
    inp = load_tensors(os.path.join(d, "input.safetensors"))
    hs, pos, cu = inp["hidden_states"], inp["positions"], inp["cu_seqlens"]
    t, hidden = int(cu[-1]), cfg["hidden_size"]
    assert hs.dtype == torch.float32 and tuple(hs.shape) == (t, hidden), hs.shape
    assert pos.dtype == torch.int64 and tuple(pos.shape) == (t,), pos.shape
    assert cu.dtype == torch.int64 and int(cu[0]) == 0 and bool(torch.all(cu.diff() > 0))

    outputs = {}
    for fn, dtype in OUTPUT_FILES.items():
        if os.path.exists(os.path.join(d, fn)):
            out = load_tensors(os.path.join(d, fn))["attn_output"]
            assert out.dtype == dtype and tuple(out.shape) == (t, hidden), f"{case}/{fn}: {out.dtype} {out.shape}"
            assert bool(torch.isfinite(out).all()), f"{case}/{fn}: non-finite output"
            assert float(out.double().std()) > 1e-3, f"{case}/{fn}: output too small"
            outputs[fn] = out
    assert "expected_f64.safetensors" in outputs, f"{case}: no float64 reference"
    if "expected.safetensors" in outputs:  # an original case: all three outputs and precision.json
        assert "expected_bf16.safetensors" in outputs and os.path.exists(os.path.join(d, "precision.json"))

    tensors = {}
    for fn in checkpoint_files(d):
        tensors.update(load_tensors(fn))
    layer = read_json(os.path.join(d, "reference.json"))["layer_idx"]
    p = f"model.layers.{layer}.self_attn."
    check_checkpoint(case, cfg, tensors, p)
    form = gate_form(cfg)
    concatenated = os.path.join(d, CONCATENATED_FILE)
    assert os.path.exists(concatenated) == (form is not None and form.placement == "packed"), case
    if os.path.exists(concatenated):
        wrong = load_tensors(concatenated)
        check_checkpoint(case, cfg, wrong, p)
        assert wrong.keys() == tensors.keys(), f"{case}: the concatenated file must use the same names"
        assert not torch.equal(wrong[p + form.q_name], tensors[p + form.q_name]), case

    f64 = outputs["expected_f64.safetensors"]
    size = sum(os.path.getsize(f) for f in glob.glob(os.path.join(d, "*")))
    print(f"{case:38s} T={t:3d} seqs={len(cu) - 1} files={len(os.listdir(d)):2d} bytes={size:7d} "
          f"out_std={float(f64.std()):.4f} out_absmax={float(f64.abs().max()):.4f} "
          f"outputs={','.join(fn.split('.')[0] for fn in outputs)}")
