"""Cases for every gate form (granularity x placement x activation), with float64 expected outputs.

Each case directory holds config.json, model.safetensors (the form's own layout), input.safetensors,
expected_f64.safetensors (``attn_output`` F64 from HF's float64 forward of the stored weights) and
reference.json. A packed case also holds model_concatenated.safetensors: the same weights with the
query projection stored the wrong way, [all query rows | all gate rows], under the same names.

Everything after the checkpoint is written is computed from the files read back.
"""

from __future__ import annotations

import os

import torch

from base_cases import BASE_CONFIG
from fixture_io import (CONCATENATED_FILE, error_stats, fresh_dir, generator_versions, prefixed,
                        read_layer_attention, save_tensors, write_input, write_json, write_output)
from gate_forms import GateForm, gate_form, hand_check, to_checkpoint
from references import case_runner
from weights import make_inputs, random_attn_params

F32_VS_F64_RELATIVE_LIMIT = 2e-6


def gate_tensors(form: GateForm) -> dict:
    """Where the gate lives in the checkpoint, for reference.json."""
    if form.placement == "packed":
        return {form.q_name: f"[H * (qk_head_dim + {form.per_head}), in], per head [q_h | g_h]"}
    out = {"gate.weight": f"[{form.width}, hidden]"}
    if form.gate_bias:
        out["gate.bias"] = f"[{form.width}]"
    return out


def gate_input_name(form: GateForm) -> str:
    if form.placement == "separate" or form.q_name == "q_proj.weight":
        return "hidden_states"
    return "q_a_layernorm output (the input of q_b_proj)"


def heads_max_abs(form: GateForm, records: list[dict], reference: list[dict]) -> list[float]:
    """Per head, max |Δ| of the gated o_proj input between two runs (over all sequences)."""
    worst = [0.0] * form.heads
    for rec, ref in zip(records, reference):
        d = (rec["gated"][0] - ref["gated"][0]).abs()  # [T, H * v]
        per_head = d.view(d.shape[0], form.heads, form.v_head_dim).amax(dim=(0, 2))
        worst = [max(w, float(v)) for w, v in zip(worst, per_head)]
    return worst


def gate_case(out_root: str, case: str, seed: int, gate: dict, cu_seqlens: list[int], description: str,
              overrides: dict | None = None) -> None:
    gen = torch.Generator().manual_seed(seed)
    cfg = dict(BASE_CONFIG)
    cfg.update(overrides or {})
    cfg.update({"use_gated_attn": True}, **gate)
    form = gate_form(cfg)
    params = random_attn_params(cfg, gen)
    hidden, positions = make_inputs(cfg, gen, cu_seqlens)

    d = fresh_dir(out_root, case)
    write_json(os.path.join(d, "config.json"), cfg)
    save_tensors(os.path.join(d, "model.safetensors"), prefixed(0, to_checkpoint(form, params)))
    if form.placement == "packed":
        save_tensors(os.path.join(d, CONCATENATED_FILE),
                     prefixed(0, to_checkpoint(form, params, layout="concatenated")))
    write_input(d, hidden, positions, cu_seqlens)
    write_json(os.path.join(d, "reference.json"), {"layer_idx": 0})  # read by case_runner

    _, layer, run = case_runner(d)
    stored = read_layer_attention(d, layer)
    out64, derived, records = run("f64", record=True)
    exact64, _ = run("f64", exact_f64=True)
    out32, _ = run("f32")
    f32_vs_f64 = error_stats(out32, out64)
    assert f32_vs_f64["relative"] < F32_VS_F64_RELATIVE_LIMIT, f"{case}: f32 vs f64 {f32_vs_f64}"
    write_output(os.path.join(d, "expected_f64.safetensors"), out64)

    info = {
        "description": description,
        "layer_idx": layer,
        "gate": {"act": form.act, "granularity": form.granularity, "placement": form.placement,
                 "use_bias": form.use_bias, "gate_bias": form.gate_bias, "rows_per_head": form.per_head,
                 "tensors": gate_tensors(form),
                 "input": gate_input_name(form)},
        **derived,
        "expected": {"file": "expected_f64.safetensors", "dtype": "F64",
                     "note": "HF's float64 forward; its rotary tables and softmax are float32 inside HF"},
        "hand_check_max_abs": hand_check(form, stored, records),
        "hf_f32_vs_f64": f32_vs_f64,
        "exact_f64_vs_hf_f64": error_stats(out64, exact64),
    }
    if form.placement == "packed":
        wrong = read_layer_attention(d, layer, CONCATENATED_FILE)
        assert wrong.keys() == stored.keys()
        out_wrong, _, rec_wrong = run("f64", stored_tensors=wrong, record=True)
        info["concatenated_read_as_interleaved"] = {
            "file": CONCATENATED_FILE,
            "vs_expected": error_stats(out_wrong, out64),
            "o_proj_input_max_abs_by_head": heads_max_abs(form, rec_wrong, records),
        }
    info["generated_with"] = generator_versions()
    write_json(os.path.join(d, "reference.json"), info)


def gate(act: str, granularity: str, placement: str, use_bias: bool) -> dict:
    return {"gated_attn_act": act, "gated_attn_granularity": granularity,
            "gated_attn_placement": placement, "use_bias": use_bias}


GATE_CASES = {
    "gate_head_separate_sigmoid_bias": lambda out: gate_case(
        out, "gate_head_separate_sigmoid_bias", 2001, gate("sigmoid", "head", "separate", True),
        [0, 5, 12], "head-wise separate gate [H, hidden] + gate.bias [H], sigmoid, o_proj.bias"),
    "gate_head_separate_softplus_nobias": lambda out: gate_case(
        out, "gate_head_separate_softplus_nobias", 2002, gate("softplus", "head", "separate", False),
        [0, 6, 7, 11], "head-wise separate gate [H, hidden], softplus, no biases, q_proj (q_lora_rank null), "
                       "a 1-token sequence", overrides={"q_lora_rank": None}),
    "gate_element_packed_sigmoid": lambda out: gate_case(
        out, "gate_element_packed_sigmoid", 2003, gate("sigmoid", "element", "packed", True),
        [0, 4, 13], "element-wise gate packed into q_b_proj per head [q_h (24) | g_h (16)], sigmoid, "
                    "use_bias gives o_proj.bias only"),
    "gate_head_packed_scaled_softsign": lambda out: gate_case(
        out, "gate_head_packed_scaled_softsign", 2004, gate("scaled_softsign", "head", "packed", False),
        [0, 7, 10], "head-wise gate packed into q_b_proj per head [q_h (24) | g_h (1)], scaled_softsign"),
    "gate_element_packed_softplus_noqlora": lambda out: gate_case(
        out, "gate_element_packed_softplus_noqlora", 2005, gate("softplus", "element", "packed", False),
        [0, 5, 9], "element-wise gate packed into q_proj per head [q_h (24) | g_h (16)] (q_lora_rank null), "
                   "softplus", overrides={"q_lora_rank": None}),
    "gate_element_separate_softplus": lambda out: gate_case(
        out, "gate_element_separate_softplus", 2006, gate("softplus", "element", "separate", True),
        [0, 2, 10], "element-wise separate gate [H*v, hidden] + gate.bias, softplus, o_proj.bias"),
}
