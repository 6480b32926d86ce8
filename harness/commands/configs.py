"""`harness configs`: every preset, its shape, the parameter count computed from the shape (and checked
against the formula), and what the seed claimed."""
from __future__ import annotations

import json


def add_arguments(p):
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def rows() -> list[dict]:
    from reference.config import PRESETS, non_embedding_params, param_count

    out = []
    for name, pr in PRESETS.items():
        c = pr.config
        out.append({
            "preset": name, **c.to_dict(),
            "params": param_count(c),
            "params_untied_head": param_count(c.with_(tie_embeddings=False)),
            "non_embedding_params": non_embedding_params(c),
            "claimed": pr.claimed_params, "claimed_where": pr.claimed_where, "note": pr.note,
        })
    return out


def run(args) -> int:
    data = rows()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title="Model presets (parameter counts computed from the shapes; tied head as in the seed)")
    for col in ("preset", "vocab", "d_model", "layers", "heads", "d_ff", "seq", "params (exact)",
                "untied head", "seed claims"):
        t.add_column(col, justify="right" if col not in ("preset", "seed claims") else "left")
    for r in data:
        t.add_row(r["preset"], str(r["vocab_size"]), str(r["d_model"]), str(r["n_layers"]), str(r["n_heads"]),
                  str(r["d_ff"]), str(r["max_seq_len"]), f"{r['params']:,}", f"{r['params_untied_head']:,}",
                  r["claimed"] or "-")
    Console(width=160).print(t)
    return 0
