"""The generation benchmark: greedy decoding of n rows of one prompt (n = 1: batch-1 decoding; n > 1: pass@k
sampling), tokens/s summed over the rows and time to first token, for MLX (reference.generate), mlx-lm's
BatchGenerator and the PyTorch twin, all on the same weights.

The twin decodes in a process of its own (`twin_generate`): `harness` re-executes itself with OpenBLAS preloaded
for MLX (reference/runtime.py), and in that process, after MLX has run, PyTorch's CPU decoding collapsed (small
preset, 2 cores: 12 / 142 tok/s at n = 1 / 20 against 2,200-3,400 at n = 20 in a process of its own;
results/gpu/NOTES.md, session 5). The child gets the weights in a temporary safetensors file, the environment
without the preload, and PyTorch's default threads; it runs every n of the configuration and hands the metrics
back as JSON. `python -m harness.perf.genbench SPEC.json OUT.json` is that child."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from ..report import metric
from .bench import BenchConfig, model_config

GEN_NOTES = {
    "mlx": "reference.generate: compiled static-cache decoding, {tpc} tokens per call, next call queued ahead; "
           "n > 1 rows share the prompt's keys/values (SharedPrefixCache; attention form {attn})",
    "mlx-lm": "mlx-lm BatchGenerator on the same weights written in its {layout} layout (harness.models.export), "
              "n copies of the prompt inserted at once, prefilled together",
    "torch": "PyTorch twin, eager, static cache, one token queued ahead; {process}",
    "torch-compile": "PyTorch twin, torch.compile(mode='reduce-overhead'): CUDA graphs, static cache; {process}",
}


def mlxlm_model(cfg, weights: dict, layout: str = "gpt2"):
    """mlx-lm's own model class for `cfg` holding `weights` (reference names), written in mlx-lm's `layout`
    (harness.models.export's tensors and config) to a temporary folder and loaded by mlx_lm.utils.load_model."""
    from mlx_lm.utils import load_model
    from safetensors.numpy import save_file

    from ..models.export import _config, _tensors

    with tempfile.TemporaryDirectory() as d:
        save_file(_tensors(weights, cfg.n_layers, layout, cfg.tie_embeddings), str(Path(d) / "model.safetensors"),
                  metadata={"format": "pt"})
        (Path(d) / "config.json").write_text(json.dumps(_config(cfg, layout, 0, None)))
        model, _ = load_model(Path(d))
    return model


def mlxlm_generate(model, prompt: list[int], n: int, new_tokens: int, ctx: int):
    """Greedy decoding of n copies of `prompt` with mlx-lm's BatchGenerator (all rows inserted together,
    prefilled in one batch), timed as reference.generate.timed_result times ours."""
    import time

    from mlx_lm.generate import BatchGenerator

    from reference.generate import timed_result

    gen = BatchGenerator(model, max_tokens=new_tokens, completion_batch_size=n, prefill_batch_size=n)
    t0 = time.perf_counter()
    uids = gen.insert([list(prompt) for _ in range(n)], [new_tokens] * n)
    row = {u: i for i, u in enumerate(uids)}
    out = [[] for _ in range(n)]
    t_first = None
    while responses := gen.next_generated():
        if t_first is None:
            t_first = time.perf_counter()
        for r in responses:
            if r.finish_reason != "stop":
                out[row[r.uid]].append(int(r.token))
    gen.close()
    return timed_result(out, len(prompt), 0, ctx, t0, t_first)


def bench_generate(bc: BenchConfig, weights=None, prompt_len: int = 64, new_tokens: int = 64,
                   env: dict | None = None, timer=None, n: int = 1, mlxlm_layout: str = "gpt2",
                   process: str = "in the calling process") -> tuple[list[dict], dict]:
    """Greedy decoding of n rows of one prompt with the KV cache (n = 1: batch-1 decoding; n > 1: the
    pass@k case): time to first token (prefill + one step) and decode tokens/s summed over the rows,
    `repeats` times after `warmup` runs, in this process. Frameworks: mlx (reference.generate), mlx-lm (its
    BatchGenerator), torch (the twin, eager) and torch-compile (the twin with CUDA graphs); `process` says
    where the twin ran, for its note (`twin_generate` runs it in a process of its own)."""
    import numpy as np

    cfg = model_config(bc)
    prompt_len = min(prompt_len, cfg.max_seq_len // 2)
    new_tokens = min(new_tokens, cfg.max_seq_len - prompt_len)
    prompt = np.random.default_rng(1).integers(0, cfg.vocab_size, size=prompt_len).tolist()
    if bc.framework in ("mlx", "mlx-lm"):
        import mlx.core as mx

        from reference.model import build_model

        if bc.framework == "mlx":
            from reference.generate import generate_tokens

            model = build_model(cfg, seed=0)
            if weights is not None:
                model.load_weights([(k, mx.array(v)) for k, v in weights.items()])
            if bc.dtype == "bfloat16":  # weights and cache in the benchmark's dtype, as the twin's are
                model.set_dtype(mx.bfloat16)
            model.eval()
            run = lambda: generate_tokens(model, prompt, n=n, max_tokens=new_tokens, temperature=0.0)  # noqa: E731
        else:
            if weights is None:
                from mlx.utils import tree_flatten

                weights = {k: np.array(v) for k, v in tree_flatten(build_model(cfg, seed=0).parameters())}
            model = mlxlm_model(cfg, weights, mlxlm_layout)
            if bc.dtype == "bfloat16":
                model.set_dtype(mx.bfloat16)
            mx.eval(model.parameters())
            run = lambda: mlxlm_generate(model, prompt, n, new_tokens, cfg.max_seq_len)  # noqa: E731
    else:
        import torch

        from reference.torch_twin import TorchGPT, load_mlx_weights, torch_generate

        dev = "cuda" if torch.cuda.is_available() else "cpu"
        model = load_mlx_weights(TorchGPT(cfg), weights).to(dev).eval()
        if bc.dtype == "bfloat16":
            model = model.to(torch.bfloat16)
        mode = "reduce-overhead" if bc.framework == "torch-compile" else None  # CUDA graphs
        run = lambda: torch_generate(model, prompt, new_tokens, n=n, compile_mode=mode)  # noqa: E731
    results = []
    if timer is not None:  # the caller times each generation (pytest-benchmark: one round per generation)
        results = timer(run, warmup=bc.warmup, repeats=bc.repeats)
    for i in range(0 if timer is not None else bc.warmup + bc.repeats):
        r = run()
        if i >= bc.warmup:
            results.append(r)
    labels = {**bc.labels(), "batch": n, "n": n, "seq": prompt_len, "new_tokens": new_tokens}
    labels.pop("grad_checkpoint")
    if bc.framework == "mlx-lm":
        labels["layout"] = mlxlm_layout
    from reference.generate import decoder_settings

    ds = decoder_settings()
    note = GEN_NOTES[bc.framework].format(tpc=ds["tokens_per_call" if n == 1 else "batch_tokens_per_call"],
                                          layout=mlxlm_layout, attn=ds["batch_attention"], process=process)
    tps = [r.decode_tokens_per_s for r in results]
    bound = _bandwidth_bound(cfg, bc.dtype, env, prompt_len + new_tokens / 2, n)
    extra = []
    if bound is not None:
        extra.append(metric("gen.bandwidth_fraction", None, "ratio", True, samples=[x / bound[0] for x in tps],
                            labels=labels, note=bound[1]))
    return extra + [metric("gen.tokens_per_s", None, "tokens/s", True, samples=tps, labels=labels, note=note),
            metric("gen.first_token_s", None, "s", False, samples=[r.first_token_s for r in results], labels=labels)], \
        {"n": n, "framework": bc.framework, "tokens": results[-1].tokens[0][:16],
         "rows_equal_row0": sum(t == results[-1].tokens[0] for t in results[-1].tokens)}


def _bandwidth_bound(cfg, dtype: str, env: dict | None, context: float, n: int = 1) -> tuple[float, str] | None:
    """(tokens/s if each decode step only read what it must, once, at the device's peak bandwidth, how): the
    weights it multiplies by once and each of the n rows' KV cache at the mean context
    (harness.perf.feasibility.decode_bytes_per_token). Rows that share their prompt's keys/values need read them
    only once, so a decoder that shares them can pass this bound."""
    from .feasibility import decode_bytes_per_token
    from .hardware import memory_bandwidth

    bw = memory_bandwidth(env) if env else None
    if bw is None:
        return None
    elem = 2 if dtype == "bfloat16" else 4
    one = decode_bytes_per_token(cfg, int(round(context)), elem)
    kv = decode_bytes_per_token(cfg, int(round(context)), elem) - decode_bytes_per_token(cfg, 0, elem)
    nbytes = one + (n - 1) * kv  # per step of n tokens
    rate = n * bw[0] / nbytes
    return rate, (f"median tokens/s over {rate:,.0f} tokens/s = {n} x {bw[1]} / {nbytes / 1e9:.3f} GB read per "
                  f"step of {n} rows (weights multiplied by + {n} x the KV cache at the mean context of {context:.0f})")


def _cuda_graphs_available() -> bool:
    """torch.compile(mode="reduce-overhead") generation is measured only where it means CUDA graphs."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


# --- the twin in a process of its own -------------------------------------------------------------------

def twin_env(env: dict | None = None) -> dict:
    """The environment for the twin's process: this one without the OpenBLAS that reference.runtime preloads
    for MLX (the rest of LD_PRELOAD kept), without its kernel pin and re-exec mark, and without the thread
    settings that serve MLX's OpenBLAS, so PyTorch runs with its own libraries and default threads."""
    from reference.runtime import _MARK, find_openblas

    env = dict(os.environ if env is None else env)
    lib = find_openblas()
    pre = [p for p in env.get("LD_PRELOAD", "").split(":") if p and p != lib]
    env.pop("LD_PRELOAD", None)
    if pre:
        env["LD_PRELOAD"] = ":".join(pre)
    for k in (_MARK, "OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS"):
        env.pop(k, None)
    return env


def twin_generate(bc: BenchConfig, weights: dict, prompt_len: int, new_tokens: int, env: dict | None,
                  ns=(1,)) -> list[tuple[list[dict], dict]]:
    """bench_generate for the twin (bc.framework torch or torch-compile) at each n of `ns`, run in a child
    process (`main` below) on `weights` handed over in a temporary safetensors file; [(metrics, details)]
    per n, as bench_generate returns them. The child's own details say how it ran (details["process"])."""
    from safetensors.numpy import save_file

    with tempfile.TemporaryDirectory(prefix="harness-twin-") as d:
        spec = {"config": asdict(bc), "prompt_len": prompt_len, "new_tokens": new_tokens, "ns": list(ns),
                "env": env, "weights": str(Path(d) / "weights.safetensors")}
        save_file(dict(weights), spec["weights"])
        (Path(d) / "spec.json").write_text(json.dumps(spec))
        out = Path(d) / "out.json"
        cmd = [sys.executable, "-m", "harness.perf.genbench", str(Path(d) / "spec.json"), str(out)]
        proc = subprocess.run(cmd, env=twin_env(), capture_output=True, text=True)
        if proc.returncode != 0 or not out.exists():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise RuntimeError(f"the twin's generation benchmark failed in its process (exit {proc.returncode}):\n{tail}")
        return [(m, d_) for m, d_ in json.loads(out.read_text())]


def _child(spec_path: str, out_path: str) -> int:
    """The twin's process: every n of the spec through bench_generate, results to out_path as JSON."""
    from safetensors.numpy import load_file

    spec = json.loads(Path(spec_path).read_text())
    c = dict(spec["config"])
    c["train_options"] = tuple(tuple(x) for x in c.get("train_options") or ())
    bc = BenchConfig(**c)
    weights = load_file(spec["weights"])
    import torch

    process = (f"in a process of its own (no OpenBLAS preload, PyTorch's default {torch.get_num_threads()} "
               f"threads), weights handed over in a safetensors file")
    how = {"separate": True, "torch_threads": torch.get_num_threads(), "ld_preload": os.environ.get("LD_PRELOAD"),
           "mlx_imported": None}
    results = []
    for n in spec["ns"]:
        m, d = bench_generate(bc, weights, spec["prompt_len"], spec["new_tokens"], spec["env"], n=n, process=process)
        how["mlx_imported"] = "mlx.core" in sys.modules  # reference.generate's helpers import it (unused here)
        results.append((m, {**d, "process": dict(how)}))
    Path(out_path).write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: python -m harness.perf.genbench SPEC.json OUT.json (run by harness bench)", file=sys.stderr)
        sys.exit(2)
    sys.exit(_child(sys.argv[1], sys.argv[2]))
