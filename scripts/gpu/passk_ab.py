"""Decoding n rows of one prompt with the reference MLX decoder, one JSON line per (n, variant): tokens/s
summed over rows for each timed run, and the greedy tokens of row 0 (first 32) with the number of rows equal
to it, so that trees and layouts can be compared like with like.

    python3 scripts/gpu/passk_ab.py PRESET [--n 1 20 100] [--tree DIR] [--label NAME]
        [--layout shared|repeat] [--ablate noattn] [--prompt 256] [--new 256] [--runs 5] [--warmup 1]

--tree imports `reference` from DIR instead of this checkout (an older tree, for an A/B in separate processes
on one machine). --layout sets reference.generate.BATCH_LAYOUT where the tree has it. --ablate noattn replaces
the batched attention by its query (what the step costs without attention)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("preset")
    ap.add_argument("--n", type=int, nargs="+", default=[1, 20, 100])
    ap.add_argument("--tree", default=str(Path(__file__).resolve().parents[2]))
    ap.add_argument("--label", default="")
    ap.add_argument("--layout", default=None)
    ap.add_argument("--ablate", default=None, choices=[None, "noattn"])
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--new", type=int, default=256)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--dtype", default="bfloat16")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(Path(a.tree).resolve()))
    import mlx.core as mx
    import numpy as np

    import reference.generate as G
    import reference.model as M
    try:
        import reference.kvcache as KV
    except ImportError:  # a tree from before reference/kvcache.py
        KV = M
    if Path(KV.__file__).parent != Path(M.__file__).parent:  # an editable install's kvcache, not the tree's
        KV = M
    from reference.config import get_config
    from reference.model import build_model

    if a.layout and hasattr(G, "BATCH_LAYOUT"):
        G.BATCH_LAYOUT = a.layout
    if a.ablate == "noattn":
        M.shared_prefix_attention = lambda q, cache, mask, scale: q
    cfg = get_config(a.preset)
    model = build_model(cfg, seed=0)
    if a.dtype == "bfloat16":
        model.set_dtype(mx.bfloat16)
    model.eval()
    prompt = np.random.default_rng(1).integers(0, cfg.vocab_size, a.prompt).tolist()
    for n in a.n:
        runs, first, toks = [], [], None
        t0 = time.time()
        for i in range(a.warmup + a.runs):
            r = G.generate_tokens(model, prompt, n=n, max_tokens=a.new)
            if i >= a.warmup:
                runs.append(r.decode_tokens_per_s)
                first.append(r.first_token_s)
            toks = r.tokens
        row = {"preset": a.preset, "n": n, "label": a.label, "layout": getattr(G, "BATCH_LAYOUT", "repeat"),
               "ablate": a.ablate, "dtype": a.dtype,
               "attention": next((m.decode_attention_form() for m in (KV, M) if hasattr(m, "decode_attention_form")),
                                 None),
               "tokens_per_call": getattr(G, "BATCH_TOKENS_PER_CALL", None), "tokens_per_s": [round(x, 1) for x in runs],
               "median": round(sorted(runs)[len(runs) // 2], 1), "first_token_s": [round(x, 4) for x in first],
               "tokens_head": toks[0][:32], "rows_equal_row0": sum(t == toks[0] for t in toks),
               "wall_s": round(time.time() - t0, 1)}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
