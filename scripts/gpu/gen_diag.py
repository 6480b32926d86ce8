"""Batch-1 greedy decoding of the MLX model in several ways, to find where per-token time goes:
the compiled static-cache step (reference.generate) at 1, 4 and 16 tokens per compiled call, and the
growing-cache uncompiled loop (reference.model.KVCache), each with fp32 and bf16 weights. Prints one JSON
line per way (3 runs each).
Usage: python3 scripts/gpu/gen_diag.py PRESET [PROMPT NEW]"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import mlx.core as mx  # noqa: E402
import numpy as np  # noqa: E402

from reference.config import get_config  # noqa: E402
from reference.generate import generate_tokens  # noqa: E402
from reference.model import build_model, make_cache  # noqa: E402


def dynamic(model, prompt, new):
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


def main():
    preset = sys.argv[1]
    P, N = (int(sys.argv[2]), int(sys.argv[3])) if len(sys.argv) > 3 else (256, 256)
    prompt = np.random.default_rng(1).integers(0, get_config(preset).vocab_size, P).tolist()
    for dtype in ("float32", "bfloat16"):
        model = build_model(get_config(preset))
        if dtype == "bfloat16":
            model.set_dtype(mx.bfloat16)
        model.eval()
        for way in ("static-compiled-1", "static-compiled-4", "static-compiled-16", "dynamic-eager"):
            runs = []
            for _ in range(3):
                if way.startswith("static-compiled"):
                    per_call = int(way.rsplit("-", 1)[1])
                    runs.append(generate_tokens(model, prompt, max_tokens=N,
                                                tokens_per_call=per_call).decode_tokens_per_s)
                else:
                    runs.append(dynamic(model, prompt, N))
            print(json.dumps({"preset": preset, "dtype": dtype, "way": way, "tokens_per_s": runs}), flush=True)


if __name__ == "__main__":
    main()
