"""Ablations of the MLX training step (and the PyTorch twin) on one configuration, each variant in a
fresh process so peak memory is its own. Writes one `bench` report whose metrics carry a `variant` label.

    python3 scripts/gpu/ablate.py --preset medium --batch 8 --seq 2048 --out $OUT/ablate-medium.json \
        --variants old gelu default nodrop fwd fwdbwd torch torch-compile ...

Variants (MLX unless named torch*):
  old        the step as first measured: autodiff GELU (mlx.nn.gelu), whole-logits cross-entropy, mlx.nn.Dropout
  olddrop    default with mlx.nn.Dropout (32-bit words per element, kept for the backward pass)
  threefry / hashdrop   default with reference.dropout's threefry / hash masks (DEFAULT_MASK; the default was
             "hash" at commit 11b27f3 only, where results/gpu/h100-diag/ablate-*-dropout.json were measured)
  gelu       GELU with its hand-written gradient, whole-logits cross-entropy
  default    the reference as it is (GELU with its gradient, chunked head + cross-entropy)
  nodrop     default with dropout 0 (what dropout costs)
  eager      default without mx.compile
  ckpt       default with gradient checkpointing
  bfs4 / bfs1 / ops500 ...   default with MLX_BFS_MAX_WIDTH=4 / 1, MLX_MAX_OPS_PER_BUFFER=500
  nographs   default with MLX_USE_CUDA_GRAPHS=0 (kernels launched one by one instead of as CUDA graphs)
  lim<N>     default with mx.set_memory_limit(N GiB) (TrainConfig.memory_limit_gb), e.g. lim12, lim20
  fwd / fwdbwd   forward only / forward + backward (no optimizer) of the default model, compiled
  torch, torch-compile, torch-nodrop, torch-compile-nodrop   the twin
  torch-fwd / torch-fwdbwd   the twin's forward only / forward + backward, eager
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

ENV_VARIANTS = {"bfs1": {"MLX_BFS_MAX_WIDTH": "1"}, "bfs4": {"MLX_BFS_MAX_WIDTH": "4"},
                "bfs64": {"MLX_BFS_MAX_WIDTH": "64"}, "ops500": {"MLX_MAX_OPS_PER_BUFFER": "500"},
                "ops50": {"MLX_MAX_OPS_PER_BUFFER": "50"}, "mb4000": {"MLX_MAX_MB_PER_BUFFER": "4000"},
                "nocudnn": {"MLX_CUDA_USE_CUDNN_SDPA": "0"}, "ops10": {"MLX_MAX_OPS_PER_BUFFER": "10"},
                "nographs": {"MLX_USE_CUDA_GRAPHS": "0"}}


def one(variant: str, preset: str, batch: int, seq: int, dtype: str, warmup: int, repeats: int) -> dict:
    from harness.perf.bench import BenchConfig, bench_train_mlx, bench_train_torch, initial_weights
    from harness.environment import fingerprint

    env = fingerprint()
    opts, dropout, fw = {}, None, "mlx"
    if variant in ("torch-fwd", "torch-fwdbwd"):
        return torch_partial(variant, preset, batch, seq, dtype, warmup, repeats, env)
    if variant.startswith("torch"):
        fw = "torch-compile" if variant.startswith("torch-compile") else "torch"
        dropout = 0.0 if variant.endswith("nodrop") else None
    elif variant == "old":
        import mlx.nn as nn

        import reference.model as rm
        rm.gelu = nn.gelu
        rm.Dropout = _mlx_dropout()
        opts = {"loss_chunk": 0}
    elif variant == "olddrop":
        import reference.model as rm
        rm.Dropout = _mlx_dropout()
    elif variant in ("threefry", "hashdrop"):
        import reference.dropout as rd
        rd.DEFAULT_MASK = "threefry" if variant == "threefry" else "hash"
    elif variant == "gelu":
        opts = {"loss_chunk": 0}
    elif variant == "nodrop":
        dropout = 0.0
    elif variant.startswith("lim") and variant[3:].replace(".", "", 1).isdigit():
        opts = {"memory_limit_gb": float(variant[3:])}
    elif variant == "eager":
        opts = {"compile": False}
    elif variant in ("fwd", "fwdbwd"):
        return partial_step(variant, preset, batch, seq, dtype, warmup, repeats, env)
    bc = BenchConfig(preset=preset, batch=batch, seq=seq, dtype=dtype, grad_checkpoint=variant == "ckpt",
                     framework=fw, warmup=warmup, repeats=repeats, dropout=dropout,
                     train_options=tuple(sorted(opts.items())))
    if fw == "mlx":
        ms, d = bench_train_mlx(bc, env)
    else:
        ms, d = bench_train_torch(bc, env, initial_weights(bc))
    for m in ms:
        m["labels"]["variant"] = variant
    return {"metrics": ms, "details": {"variant": variant, **d}, "environment": env}


def _mlx_dropout():
    import mlx.nn as nn

    class MLXDropout(nn.Dropout):
        def __call__(self, x, key=None):  # the key that pins reference.dropout's masks is ignored
            return super().__call__(x)

    return MLXDropout


def partial_step(variant, preset, batch, seq, dtype, warmup, repeats, env) -> dict:
    """Forward only, or forward + backward (no optimizer), compiled, of the default model: where the step's
    time goes, next to the full step."""
    import mlx.core as mx

    from harness.perf.bench import BenchConfig, _random_batch, model_config
    from harness.report import metric
    from harness.perf.timing import timeit_pipelined
    from reference.losses import lm_loss
    from reference.model import build_model
    from reference.train import make_loss_and_grad

    bc = BenchConfig(preset=preset, batch=batch, seq=seq, dtype=dtype, warmup=warmup, repeats=repeats)
    cfg = model_config(bc)
    model = build_model(cfg)
    model.train()
    xs, ys = _random_batch(cfg, bc)
    x, y = mx.array(xs), mx.array(ys)
    if variant == "fwd":
        if dtype == "bfloat16":
            model.set_dtype(mx.bfloat16)
        f = mx.compile(lambda a, b: lm_loss(model, a, b, None), inputs=[model.state, mx.random.state],
                       outputs=[mx.random.state])
    else:
        g = make_loss_and_grad(model, dtype)
        f = mx.compile(lambda a, b: g(a, b), inputs=[model.state, mx.random.state], outputs=[mx.random.state])
    state = [mx.random.state]

    def dispatch():
        out = f(x, y)
        mx.async_eval(out, state)
        return out

    mx.reset_peak_memory()
    t = timeit_pipelined(dispatch, lambda out: mx.eval(out), warmup=warmup, repeats=repeats)
    labels = {**bc.labels(), "variant": variant}
    tok = batch * seq
    return {"metrics": [metric("train.tokens_per_s", None, "tokens/s", True, samples=[tok / s for s in t.samples],
                               labels=labels, note="forward only" if variant == "fwd" else "forward + backward"),
                        metric("train.peak_memory_bytes", mx.get_peak_memory(), "bytes", False, labels=labels)],
            "details": {"variant": variant}, "environment": env}


def torch_partial(variant, preset, batch, seq, dtype, warmup, repeats, env) -> dict:
    import torch

    from harness.perf.bench import BenchConfig, _random_batch, initial_weights, model_config
    from harness.report import metric
    from harness.perf.timing import timeit_pipelined
    from reference.torch_twin import TorchGPT, load_mlx_weights

    bc = BenchConfig(preset=preset, batch=batch, seq=seq, dtype=dtype, warmup=warmup, repeats=repeats)
    cfg = model_config(bc)
    model = load_mlx_weights(TorchGPT(cfg), initial_weights(bc)).cuda().train()
    xs, ys = _random_batch(cfg, bc)
    x, y = torch.from_numpy(xs).cuda(), torch.from_numpy(ys).cuda()
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == "bfloat16")

    def dispatch():
        for p in model.parameters():
            p.grad = None
        with torch.set_grad_enabled(variant == "torch-fwdbwd"), amp:
            logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, logits.size(-1)), y.view(-1))
        if variant == "torch-fwdbwd":
            loss.backward()
        ev = torch.cuda.Event()
        ev.record()
        return ev

    torch.cuda.reset_peak_memory_stats()
    t = timeit_pipelined(dispatch, lambda ev: ev.synchronize(), warmup=warmup, repeats=repeats)
    labels = {**bc.labels(), "framework": "torch", "variant": variant}
    tok = batch * seq
    return {"metrics": [metric("train.tokens_per_s", None, "tokens/s", True, samples=[tok / s for s in t.samples],
                               labels=labels, note="forward only" if variant == "torch-fwd" else "forward + backward"),
                        metric("train.peak_memory_bytes", torch.cuda.max_memory_allocated(), "bytes", False,
                               labels=labels)],
            "details": {"variant": variant}, "environment": env}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--seq", type=int, required=True)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--variants", nargs="+", required=True)
    ap.add_argument("--out")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print("RESULT " + json.dumps(one(a.one, a.preset, a.batch, a.seq, a.dtype, a.warmup, a.repeats)), flush=True)
        return 0
    from harness.report import make_report, write_report

    metrics, details, env = [], [], None
    for v in a.variants:
        t0 = time.time()
        e = {**os.environ, **ENV_VARIANTS.get(v, {})}
        p = subprocess.run([sys.executable, __file__, "--one", v, "--preset", a.preset, "--batch", str(a.batch),
                            "--seq", str(a.seq), "--dtype", a.dtype, "--warmup", str(a.warmup),
                            "--repeats", str(a.repeats), "--variants", v], env=e, capture_output=True, text=True)
        line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if p.returncode or line is None:
            details.append({"variant": v, "error": (p.stderr or p.stdout)[-2000:]})
            print(f"{v}: FAILED {p.stderr[-600:]}", file=sys.stderr, flush=True)
            continue
        r = json.loads(line[7:])
        for m in r["metrics"]:
            m["labels"].update({"variant": v, **ENV_VARIANTS.get(v, {})})
        metrics += r["metrics"]
        details.append({**r["details"], "env_overrides": ENV_VARIANTS.get(v, {}), "wall_s": round(time.time() - t0, 1)})
        env = r["environment"]
        ms = {m["name"]: m["value"] for m in r["metrics"]}
        print(f"{v:22s} {ms.get('train.tokens_per_s') or 0:>10,.0f} tok/s  "
              f"peak {(ms.get('train.peak_memory_bytes') or 0) / 2**30:6.2f} GiB  ({time.time() - t0:.0f} s)",
              file=sys.stderr, flush=True)
    rep = make_report("bench", {"preset": a.preset, "batch": [a.batch], "seq": [a.seq], "dtype": [a.dtype],
                                "ablation": a.variants}, metrics, "ok" if metrics else "failed",
                      measurement={"warmup": a.warmup, "repeats": a.repeats,
                                   "method": "scripts/gpu/ablate.py: each variant in its own process; "
                                             "see harness bench's method"},
                      details=details, environment=env)
    if a.out:
        print(write_report(rep, a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
