"""Reading and writing the files of a golden case directory.

Every writer here is deterministic: tensors are saved sorted by name, contiguous, with the
same safetensors metadata, and JSON with a fixed indent and key order.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import safetensors
import safetensors.torch
import torch
import transformers

SAFETENSORS_METADATA = {"format": "pt"}
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
CONCATENATED_FILE = "model_concatenated.safetensors"


def write_json(path: str, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")


def read_json(path: str):
    with open(path) as f:
        return json.load(f)


def save_tensors(path: str, tensors: dict) -> None:
    safetensors.torch.save_file({k: v.contiguous() for k, v in sorted(tensors.items())}, path,
                                metadata=SAFETENSORS_METADATA)


def load_tensors(path: str) -> dict:
    with safetensors.safe_open(path, framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def generator_versions() -> dict:
    return {"torch": torch.__version__.split("+")[0], "transformers": transformers.__version__}


def write_common(case_dir: str, hidden, positions, cu_seqlens, expected, derived, notes: dict):
    """input.safetensors, the f32 expected.safetensors and reference.json of an original case."""
    write_input(case_dir, hidden, positions, cu_seqlens)
    save_tensors(os.path.join(case_dir, "expected.safetensors"),
                 {"attn_output": expected.to(torch.float32)})
    info = dict(notes)
    info.update(derived)
    info["generated_with"] = generator_versions()
    write_json(os.path.join(case_dir, "reference.json"), info)


def write_input(case_dir: str, hidden, positions, cu_seqlens) -> None:
    save_tensors(os.path.join(case_dir, "input.safetensors"),
                 {"hidden_states": hidden.to(torch.float32),
                  "positions": positions.to(torch.int64),
                  "cu_seqlens": torch.tensor(cu_seqlens, dtype=torch.int64)})


def read_input(case_dir: str):
    """(hidden_states [T, hidden] F32, positions [T] I64, cu_seqlens as a list)."""
    t = load_tensors(os.path.join(case_dir, "input.safetensors"))
    return t["hidden_states"], t["positions"], [int(v) for v in t["cu_seqlens"]]


def write_output(path: str, attn_output: torch.Tensor) -> None:
    """`attn_output` stored in the tensor's own dtype (F64, BF16 or F32), bits as computed."""
    save_tensors(path, {"attn_output": attn_output})


def read_output(path: str) -> torch.Tensor:
    return load_tensors(path)["attn_output"]


def prefixed(layer_idx: int, params: dict) -> dict:
    return {f"model.layers.{layer_idx}.self_attn.{k}": v for k, v in params.items()}


def fresh_dir(out_root: str, case: str) -> str:
    d = os.path.join(out_root, case)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    return d


def checkpoint_files(case_dir: str, file_name: str = SINGLE_FILE) -> list[str]:
    """The files a loader reads: `model.safetensors.index.json`'s shards, else `file_name`."""
    index = os.path.join(case_dir, INDEX_FILE)
    if file_name == SINGLE_FILE and os.path.exists(index):
        shards = sorted(set(read_json(index)["weight_map"].values()))
        return [os.path.join(case_dir, s) for s in shards]
    return [os.path.join(case_dir, file_name)]


def read_layer_attention(case_dir: str, layer_idx: int, file_name: str = SINGLE_FILE) -> dict:
    """Layer `layer_idx`'s attention tensors exactly as stored (dtype kept), names without the prefix."""
    prefix = f"model.layers.{layer_idx}.self_attn."
    out = {}
    for fn in checkpoint_files(case_dir, file_name):
        with safetensors.safe_open(fn, framework="pt") as f:
            for k in f.keys():
                if k.startswith(prefix):
                    out[k[len(prefix):]] = f.get_tensor(k)
    return out


def error_stats(result: torch.Tensor, reference: torch.Tensor) -> dict:
    """Error of `result` against `reference`, both widened to float64.

    relative = max|Δ| / max|ref| (the Swift `Comparison.relative`);
    rms = sqrt(mean(Δ²)); rms_relative = rms / sqrt(mean(ref²)).
    """
    r = result.to(torch.float64).numpy()
    ref = reference.to(torch.float64).numpy()
    d = np.abs(r - ref)
    max_abs, max_ref = float(d.max()), float(np.abs(ref).max())
    rms, rms_ref = float(np.sqrt(np.mean(d * d))), float(np.sqrt(np.mean(ref * ref)))
    return {"max_abs": max_abs, "max_abs_reference": max_ref, "relative": max_abs / max_ref,
            "rms": rms, "rms_reference": rms_ref, "rms_relative": rms / rms_ref}
