"""The seven original cases: f32 expected outputs from HF's float32 forward.

Their committed files (config.json, model*.safetensors, input.safetensors, expected.safetensors,
reference.json) were written by this code with torch 2.15.0 and are never rewritten by a default run:
another torch version reproduces config, checkpoint and input byte for byte but the f32
expected.safetensors only to the last bits. ``make_golden.py --base`` rewrites them.
"""

from __future__ import annotations

import inspect
import os

import safetensors
import torch

from fixture_io import (fresh_dir, prefixed, read_json, read_layer_attention, save_tensors, write_common,
                        write_json)
from hf_attention import run_attention
from transformers.models.deepseek_v3.configuration_deepseek_v3 import DeepseekV3Config
from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3ForCausalLM
from weights import (FP8_BLOCK, dequantize_fp8_block, linear_std, make_inputs, quantize_fp8_block,
                     random_attn_params)

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
    save_tensors(os.path.join(d, "model.safetensors"), tensors)
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
    weight_map = read_json(os.path.join(ds, "model.safetensors.index.json"))["weight_map"]
    attn_files = {fn for k, fn in weight_map.items() if k.startswith("model.layers.0.self_attn.")}
    assert len(attn_files) >= 2, f"attention not split across shards: {attn_files}"

    # Expected output from the bf16-rounded weights, upcast to f32, attention in f32.
    cfg = read_json(os.path.join(d, "config.json"))
    params = read_layer_attention(d, 0)
    params_sharded = read_layer_attention(ds, 0)
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
    save_tensors(os.path.join(d, "model.safetensors"), prefixed(0, stored))
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
DIRS = ["gated_sigmoid_bias", "gated_softsign_noqlora_neox", "yarn_legacy_layer1",
        "yarn_v5_ungated", "hf_save_pretrained", "hf_sharded_index", "fp8_block"]
