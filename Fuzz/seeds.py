#!/usr/bin/env python3
"""Writes the hand-made seeds of corpus/safetensors/ and corpus/config/.

Run from anywhere: python3 Fuzz/seeds.py. Standard library only (struct + json); the
files follow the safetensors layout: u64 little-endian header length, JSON header padded
with spaces to a multiple of 8 (as the reference writer does), then the data section.
The golden fixtures (Tests/Fixtures/golden/*/) are copied in as well.
"""
import json
import shutil
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I16": 2, "U16": 2,
         "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def safetensors(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape, payload bytes)."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, payload in tensors:
        count = 1
        for d in shape:
            count *= d
        assert len(payload) == count * SIZES[dtype], name
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def f32(*values):
    return struct.pack(f"<{len(values)}f", *values)


def bf16(*values):
    return b"".join(struct.pack("<f", v)[2:] for v in values)


SAFETENSORS = {
    "f32_matrix": safetensors([("w", "F32", [2, 3], f32(1, -2, 3.5, 0, 1e-3, -7))]),
    "f32_scalar": safetensors([("s", "F32", [], f32(0.125))]),
    "bf16_vector": safetensors([("b", "BF16", [4], bf16(1, -1, 0.5, 3))]),
    "i64_vector": safetensors([("ids", "I64", [3], struct.pack("<3q", 0, -1, 2**40))]),
    "empty_tensor": safetensors([("e", "F32", [0, 4], b""), ("x", "F16", [2], b"\x00\x3c\x00\xc0")]),
    "metadata": safetensors([("m.weight", "F32", [1, 2], f32(1, 2))], metadata={"format": "pt", "note": "seed"}),
    "metadata_null": safetensors([("n", "U8", [2], b"\x01\x02")], metadata=None),
    "empty_header": safetensors([]),
    "unpadded": safetensors([("u", "I32", [2], struct.pack("<2i", 7, -7))], pad=False),
    "all_dtypes": safetensors([(f"t_{d.lower()}", d, [2], bytes(range(2 * s))) for d, s in SIZES.items()]),
    "fp8_block": safetensors([("q.weight", "F8_E4M3", [2, 4], bytes(range(8))),
                              ("q.weight_scale_inv", "F32", [1, 1], f32(0.5))]),
    "hf_layer_names": safetensors([
        ("model.layers.0.self_attn.kv_a_layernorm.weight", "BF16", [2], bf16(1, 1)),
        ("model.layers.0.self_attn.o_proj.weight", "BF16", [1, 2], bf16(0.25, -0.25))], metadata={"format": "pt"}),
}

DEEPSEEK_V3 = {  # deepseek-ai/DeepSeek-V3 config.json as released (transformers 4.x form)
    "architectures": ["DeepseekV3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "auto_map": {"AutoConfig": "configuration_deepseek.DeepseekV3Config",
                 "AutoModel": "modeling_deepseek.DeepseekV3Model",
                 "AutoModelForCausalLM": "modeling_deepseek.DeepseekV3ForCausalLM"},
    "aux_loss_alpha": 0.001, "bos_token_id": 0, "eos_token_id": 1, "ep_size": 1, "first_k_dense_replace": 3,
    "hidden_act": "silu", "hidden_size": 7168, "initializer_range": 0.02, "intermediate_size": 18432,
    "kv_lora_rank": 512, "max_position_embeddings": 163840, "model_type": "deepseek_v3",
    "moe_intermediate_size": 2048, "moe_layer_freq": 1, "n_group": 8, "n_routed_experts": 256,
    "n_shared_experts": 1, "norm_topk_prob": True, "num_attention_heads": 128, "num_experts_per_tok": 8,
    "num_hidden_layers": 61, "num_key_value_heads": 128, "num_nextn_predict_layers": 1, "pretraining_tp": 1,
    "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
    "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                            "weight_block_size": [128, 128]},
    "rms_norm_eps": 1e-06,
    "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
                     "original_max_position_embeddings": 4096, "type": "yarn"},
    "rope_theta": 10000, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid", "seq_aux": True,
    "tie_word_embeddings": False, "topk_group": 4, "topk_method": "noaux_tc", "torch_dtype": "bfloat16",
    "transformers_version": "4.33.1", "use_cache": True, "v_head_dim": 128, "vocab_size": 129280,
}

# transformers 5: RoPE settings (theta included) move into `rope_parameters`, key `rope_type`.
TRANSFORMERS5 = {k: v for k, v in DEEPSEEK_V3.items()
                 if k not in ("rope_scaling", "rope_theta", "auto_map", "transformers_version")}
TRANSFORMERS5.update({
    "rope_parameters": {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 40.0, "beta_fast": 32.0,
                        "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 1.0,
                        "original_max_position_embeddings": 4096},
    "rope_interleave": True, "transformers_version": "5.0.0", "dtype": "bfloat16",
    "use_gated_attn": True, "gated_attn_act": "scaled_softsign", "use_bias": True,
})
TRANSFORMERS5.pop("torch_dtype")

CONFIGS = {
    "deepseek_v3_released.json": json.dumps(DEEPSEEK_V3, indent=2, sort_keys=True),
    "transformers5_rope_parameters.json": json.dumps(TRANSFORMERS5, indent=2, sort_keys=True),
    "minimal_default_rope.json": json.dumps({
        "hidden_size": 32, "num_attention_heads": 4, "q_lora_rank": None, "kv_lora_rank": 16,
        "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 8,
        "rope_scaling": {"rope_type": "default"}}),
}


def main():
    st, cfg = HERE / "corpus" / "safetensors", HERE / "corpus" / "config"
    st.mkdir(parents=True, exist_ok=True)
    cfg.mkdir(parents=True, exist_ok=True)
    for name, blob in SAFETENSORS.items():
        (st / f"{name}.safetensors").write_bytes(blob)
    for name, text in CONFIGS.items():
        (cfg / name).write_text(text + "\n")
    seen = set()
    for case in sorted((ROOT / "Tests" / "Fixtures" / "golden").glob("*/")):
        for source, target in ((case / "input.safetensors", st), (case / "config.json", cfg)):
            if not source.is_file() or source.stat().st_size >= 64 * 1024:
                continue
            blob = source.read_bytes()
            if blob in seen:
                continue
            seen.add(blob)
            shutil.copyfile(source, target / f"golden_{case.name}{source.suffix}")


if __name__ == "__main__":
    main()
