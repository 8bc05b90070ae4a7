"""Float64 and bf16 references for the original cases, computed from their committed files.

For a case directory holding config.json, a checkpoint, input.safetensors and the f32
expected.safetensors, this writes (and never touches the committed files):

- expected_f64.safetensors: ``attn_output`` F64, HF's module run in torch.float64 on the stored
  weights and inputs widened exactly (FP8 weights dequantized exactly in float64);
- expected_bf16.safetensors: ``attn_output`` BF16, HF's module run the way a bf16 engine runs it
  (module ``.to(torch.bfloat16)``, weights and hidden_states rounded to bf16, eager attention,
  HF's rotary tables cast to bf16 as HF casts them), bits exactly as torch produced them;
- precision.json: the committed f32 output against the float64 one, HF's own bf16 error against
  the float64 one, and how far HF's float64 forward is from an all-float64 evaluation.
"""

from __future__ import annotations

import os

import torch

from fixture_io import (error_stats, generator_versions, read_input, read_json, read_layer_attention,
                        read_output, write_json, write_output)
from hf_attention import DTYPES, causal_mask_for, run_attention
from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3ForCausalLM
from weights import module_params

F32_VS_F64_RELATIVE_LIMIT = 2e-6

F64_NOTE = ("HF's DeepseekV3Attention forward in torch.float64 (module .double(), weights and "
            "hidden_states widened exactly from the stored values, FP8 weights dequantized exactly). HF "
            "evaluates two steps in float32 even then: the rotary tables (DeepseekV3RotaryEmbedding.forward) "
            "and the softmax (eager_attention_forward, dtype=torch.float32); exact_f64_vs_hf_f64 is the "
            "difference from evaluating those two in float64 as well.")
BF16_NOTE = ("HF's DeepseekV3Attention forward in torch.bfloat16: module .to(torch.bfloat16), weights "
             "rounded to bf16 once (a BF16 checkpoint tensor as is; an FP8 weight dequantized in float32, "
             "then rounded), hidden_states rounded to bf16, eager attention, rotary tables computed by "
             "DeepseekV3RotaryEmbedding in float32 and cast to bf16, gate hooks in bf16.")


def case_runner(case_dir: str):
    """(cfg, layer, run) where run(precision, **kw) is HF's forward of the case in that precision."""
    cfg = read_json(os.path.join(case_dir, "config.json"))
    layer = read_json(os.path.join(case_dir, "reference.json"))["layer_idx"]
    hidden, positions, cu_seqlens = read_input(case_dir)
    stored = read_layer_attention(case_dir, layer)

    def run(precision: str, stored_tensors: dict | None = None, **kw):
        params = module_params(cfg, stored if stored_tensors is None else stored_tensors, precision)
        return run_attention(cfg, params, layer, hidden, positions, cu_seqlens, DTYPES[precision], **kw)

    return cfg, layer, run


@torch.no_grad()
def from_pretrained_bf16(case_dir: str) -> torch.Tensor:
    """Layer 0's attention of the whole model loaded by HF's from_pretrained(dtype=torch.bfloat16),
    with the model's own rotary embedding: HF's own bf16 path, no module built by this script."""
    model = DeepseekV3ForCausalLM.from_pretrained(case_dir, dtype=torch.bfloat16,
                                                  attn_implementation="eager").eval()
    attn, rotary = model.model.layers[0].self_attn, model.model.rotary_emb
    hidden, positions, cu_seqlens = read_input(case_dir)
    outs = []
    for s, e in zip(cu_seqlens[:-1], cu_seqlens[1:]):
        x, pos = hidden[s:e][None].to(torch.bfloat16), positions[s:e][None]
        mask = causal_mask_for(model.config, x, pos)
        out, _ = attn(hidden_states=x, position_embeddings=rotary(x, pos), attention_mask=mask)
        outs.append(out[0])
    return torch.cat(outs, 0)


def derive_references(case_dir: str, saved_by_hf: bool = False) -> dict:
    """Writes the three files; `saved_by_hf` also checks the bf16 bits against HF's from_pretrained."""
    _, layer, run = case_runner(case_dir)
    out64, _ = run("f64")
    exact64, _ = run("f64", exact_f64=True)
    out_bf16, _ = run("bf16")
    out32, _ = run("f32")
    committed = read_output(os.path.join(case_dir, "expected.safetensors"))
    assert out64.dtype == torch.float64 and out_bf16.dtype == torch.bfloat16

    f32_vs_f64 = error_stats(committed, out64)
    assert f32_vs_f64["relative"] < F32_VS_F64_RELATIVE_LIMIT, f"{case_dir}: f32 vs f64 {f32_vs_f64}"
    bf16 = {"note": BF16_NOTE, "vs_f64": error_stats(out_bf16, out64),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if saved_by_hf:  # a whole model written by save_pretrained: HF's own bf16 load, same bits
        same = torch.equal(from_pretrained_bf16(case_dir), out_bf16)
        assert same, f"{case_dir}: from_pretrained bf16 differs from the module run in bf16"
        bf16["from_pretrained_bf16_bitwise_equal"] = same

    write_output(os.path.join(case_dir, "expected_f64.safetensors"), out64)
    write_output(os.path.join(case_dir, "expected_bf16.safetensors"), out_bf16)
    info = {
        "description": "float64 and bf16 references for this case; relative = max|Δ| / max|ref|, "
                       "rms = sqrt(mean(Δ²)), rms_relative = rms / sqrt(mean(ref²))",
        "layer_idx": layer,
        "f64": {"file": "expected_f64.safetensors", "note": F64_NOTE,
                "exact_f64_vs_hf_f64": error_stats(out64, exact64)},
        "f32_expected_vs_f64": f32_vs_f64,
        "f32_recomputed_vs_committed_max_abs": float((out32 - committed).abs().max()),
        "bf16": dict(bf16, file="expected_bf16.safetensors"),
        "generated_with": generator_versions(),
    }
    write_json(os.path.join(case_dir, "precision.json"), info)
    return info
