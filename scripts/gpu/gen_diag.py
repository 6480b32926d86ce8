"""Batch-1 greedy decoding of the MLX model in several ways, to find where per-token time goes:
the compiled static-cache step (reference.generate) at 1, 4 and 16 tokens per compiled call, and the
growing-cache uncompiled loop (reference.kvcache.KVCache), each with fp32 and bf16 weights. Prints one JSON
line per way (3 runs each).

    python3 scripts/gpu/gen_diag.py PRESET [PROMPT NEW] [--dtypes bfloat16] [--ways static-compiled-1 ...]
        [--tree DIR] [--label NAME]

--tree imports `reference` from DIR instead of this checkout (an older tree, for an A/B of the decoder in
separate processes on one machine); --label tags the lines. --import-torch initialises PyTorch's CUDA first
and --numpy-weights loads the weights back from numpy, as `harness bench --twin` does (is its process
slower to decode than this one, and why). MLX_USE_CUDA_GRAPHS and MLX_MAX_OPS_PER_BUFFER
are copied into each line when set."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

WAYS = ("static-compiled-1", "static-compiled-4", "static-compiled-16", "dynamic-eager")


def dynamic(model, prompt, new, make_cache):
    import mlx.core as mx

    cache = make_cache(model)
    logits = model(mx.array([prompt], dtype=mx.int32), cache)[:, -1, :]
    tok = mx.argmax(logits, axis=-1)
    t0, out = None, []
    for i in range(new):
        out.append(tok.item())
        if t0 is None:
            t0 = time.perf_counter()
        tok = mx.argmax(model(tok[:, None].astype(mx.int32), cache)[:, -1, :], axis=-1)
    return (new - 1) / (time.perf_counter() - t0)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("preset")
    ap.add_argument("prompt", type=int, nargs="?", default=256)
    ap.add_argument("new", type=int, nargs="?", default=256)
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    ap.add_argument("--ways", nargs="+", choices=WAYS, default=list(WAYS))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tree", default=str(Path(__file__).resolve().parents[2]))
    ap.add_argument("--label", default="")
    ap.add_argument("--import-torch", action="store_true")
    ap.add_argument("--numpy-weights", action="store_true")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(Path(a.tree).resolve()))
    if a.import_torch:
        import torch

        torch.zeros(1, device="cuda" if torch.cuda.is_available() else "cpu")
    import mlx.core as mx
    import numpy as np
    from mlx.utils import tree_flatten

    from reference.config import get_config
    from reference.generate import generate_tokens
    from reference.model import build_model
    try:
        from reference.kvcache import make_cache
    except ImportError:  # a tree from before reference/kvcache.py
        from reference.model import make_cache

    env = {k: os.environ[k] for k in ("MLX_USE_CUDA_GRAPHS", "MLX_MAX_OPS_PER_BUFFER") if k in os.environ}
    prompt = np.random.default_rng(1).integers(0, get_config(a.preset).vocab_size, a.prompt).tolist()
    for dtype in a.dtypes:
        model = build_model(get_config(a.preset))
        if a.numpy_weights:
            w = {k: np.array(v) for k, v in tree_flatten(model.parameters())}
            model.load_weights([(k, mx.array(v)) for k, v in w.items()])
        if dtype == "bfloat16":
            model.set_dtype(mx.bfloat16)
        model.eval()
        for way in a.ways:
            runs, toks, spans = [], None, []
            for _ in range(a.runs):
                t0 = time.time()
                if way.startswith("static-compiled"):
                    r = generate_tokens(model, prompt, max_tokens=a.new, tokens_per_call=int(way.rsplit("-", 1)[1]))
                    runs.append(r.decode_tokens_per_s)
                    toks = r.tokens[0] if toks is None else toks
                else:
                    runs.append(dynamic(model, prompt, a.new, make_cache))
                spans.append([round(t0, 3), round(time.time(), 3)])  # wall clock, to line up with GPU clock logs
            row = {"preset": a.preset, "dtype": dtype, "way": way, "tokens_per_s": runs, "label": a.label,
                   "import_torch": a.import_torch, "numpy_weights": a.numpy_weights, "spans": spans, **env}
            if toks is not None:  # the same greedy tokens from both trees says the A/B compares like with like
                row["tokens_head"] = list(toks[:16])
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
