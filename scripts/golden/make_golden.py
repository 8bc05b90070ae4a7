#!/usr/bin/env python3
"""Generate golden fixtures for the MLA attention tests from HF transformers.

The fixtures under Tests/Fixtures/golden/<case>/ are produced by Hugging Face
transformers' own ``DeepseekV3Attention`` (eager attention, causal mask) and
``DeepseekV3RotaryEmbedding``; this script never re-implements their math. The
only extra piece is the optional output gate (FastDeploy PR #7404 and the forms
served elsewhere; gate_forms.py), attached to HF's module with hooks:

    output = o_proj( attn_out * act(g) )

where ``attn_out`` is HF's attention output reshaped to [T, H * v_head_dim]
just before ``o_proj`` and ``g`` the gate, element-wise or head-wise, from a
separate projection or packed into the query projection.

A default run writes, without touching any committed file of the seven original cases:
- for each original case, expected_f64.safetensors, expected_bf16.safetensors and
  precision.json, computed from the case's committed checkpoint and input (references.py);
- the gate-form cases, whole (gate_cases.py).
``--base`` first regenerates the seven original cases themselves (base_cases.py): their
expected.safetensors is byte-identical only under torch 2.15.0, which wrote them.

CI never runs this script; the fixtures it writes are committed. To regenerate
by hand, from the repository root (versions: Tests/Fixtures/golden/README.md):

    python3 -m venv .venv-golden
    .venv-golden/bin/pip install torch==2.13.0+cpu transformers==5.24.0 safetensors==0.8.0 numpy==2.4.6
    .venv-golden/bin/python scripts/golden/make_golden.py

(A CPU-only torch wheel is enough: add
``--index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple``
to the torch install when pip does not find one locally.)

Options: ``--out DIR`` (default Tests/Fixtures/golden), ``--only CASE`` (repeatable), ``--base``.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

import base_cases
import safetensors
import transformers
from gate_cases import GATE_CASES
from references import derive_references
from verify import verify

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_OUT = os.path.join(REPO_ROOT, "Tests", "Fixtures", "golden")
SAVED_BY_HF = ("hf_save_pretrained", "hf_sharded_index")
# The original directory each base generator writes (hf_save_pretrained writes both HF-saved ones).
BASE_WRITER = {d: ("hf_save_pretrained" if d in SAVED_BY_HF else d) for d in base_cases.DIRS}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--only", action="append", choices=base_cases.DIRS + list(GATE_CASES))
    ap.add_argument("--base", action="store_true",
                    help="also regenerate the original cases' committed f32 files")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    selected = args.only or base_cases.DIRS + list(GATE_CASES)
    base = [d for d in base_cases.DIRS if d in selected]
    if args.base:
        for writer in dict.fromkeys(BASE_WRITER[d] for d in base):
            base_cases.CASES[writer](args.out)
    for d in base:
        if os.path.isdir(os.path.join(args.out, d)):
            derive_references(os.path.join(args.out, d), saved_by_hf=d in SAVED_BY_HF)
        else:
            print(f"{d}: not in {args.out}; run with --base to create it", file=sys.stderr)
    for name in selected:
        if name in GATE_CASES:
            GATE_CASES[name](args.out)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"safetensors {safetensors.__version__}")
    for case in base_cases.DIRS + list(GATE_CASES):
        if os.path.isdir(os.path.join(args.out, case)):
            verify(args.out, case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
