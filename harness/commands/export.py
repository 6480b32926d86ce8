"""`harness export`: a checkpoint as a Hugging Face model folder (GPT-2 format) for transformers and mlx-lm.

    harness export --checkpoint RUN --out DIR [--format gpt2|gpt_bigcode]
"""
from __future__ import annotations

import json


def add_arguments(p):
    p.add_argument("--checkpoint", required=True, metavar="RUN_OR_CHECKPOINT",
                   help="a run directory written by `harness train` (its newest checkpoint) or a ckpt-* directory")
    p.add_argument("--out", required=True, metavar="DIR", help="the model folder to write (new or empty)")
    p.add_argument("--format", default="gpt2", choices=("gpt2", "gpt_bigcode"),
                   help="gpt2 (default): transformers loads it exactly, mlx-lm with tanh GELU; gpt_bigcode: "
                        "mlx-lm's exact layout, also for untied heads and d_ff != 4 d_model (mlx-lm only)")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out")


def run(args) -> int:
    from ..models.export import export

    done = export(args.checkpoint, args.out, args.format, args.force)
    print(json.dumps(done))
    return 0
