"""`harness bench`: measure one preset on this machine (training and generation; optionally the PyTorch
twin from the same weights in the same run) and write a report."""
from __future__ import annotations

import itertools
import sys


MEASUREMENT = ("optimizer steps run as a training loop runs them: step i+1 is queued before step i's loss is read "
               "back (MLX: mx.async_eval of the updated state and the loss, then loss.item(); torch: the loss "
               "copied to pinned memory behind a CUDA event); a sample is the wall time between two successive "
               "completions; tokens/s = batch*seq/sample. Generation: batch-1 greedy decoding, tokens after the "
               "first per second, and time to first token")


def add_arguments(p):
    p.add_argument("--config", required=True, help="model preset (harness configs lists them)")
    p.add_argument("--out", required=True, help="report path (JSON)")
    p.add_argument("--quick", action="store_true", help="one small shape, few repeats (about a minute on 2 CPU cores)")
    p.add_argument("--batch", type=int, nargs="+", help="batch sizes (default 4 and 8; quick: 4)")
    p.add_argument("--seq", type=int, nargs="+", help="sequence lengths (default 128 and 256; quick: 128)")
    p.add_argument("--dtype", nargs="+", default=None, choices=["float32", "bfloat16"],
                   help="default float32 on CPU, bfloat16 on GPU")
    p.add_argument("--grad-checkpoint", nargs="+", default=["off"], choices=["on", "off"])
    p.add_argument("--twin", action="store_true", help="also run the PyTorch twin (eager) from the same weights")
    p.add_argument("--torch-compile", action="store_true", help="also run the twin under torch.compile")
    p.add_argument("--no-generate", action="store_true", help="skip the generation benchmark")
    p.add_argument("--no-train", action="store_true", help="skip the training benchmark")
    p.add_argument("--blas", action="store_true",
                   help="also time a 1024x1024 fp32 matmul with MLX's bundled BLAS and with OpenBLAS (CPU)")
    p.add_argument("--gen-prompt", type=int, default=64, help="generation benchmark: prompt tokens (default 64)")
    p.add_argument("--gen-tokens", type=int, default=64, help="generation benchmark: new tokens (default 64)")
    p.add_argument("--dropout", type=float, default=None, help="override the preset's dropout (both frameworks)")
    p.add_argument("--memory-limit-gb", type=float, default=None, metavar="GiB",
                   help="MLX training only: mx.set_memory_limit during the step (MLX waits for the GPU while more "
                        "is allocated); recorded as a label of the MLX rows")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--repeats", type=int, default=None)


def _blas_metrics(repeats: int, warmup: int, n: int = 1024):
    """The fast-CPU-path check: MLX matmul with each BLAS, in child processes of this run."""
    from ..perf.blasbench import compare
    from ..report import metric

    res = compare(n=n, repeats=repeats, warmup=warmup)
    ms = []
    for v in ("bundled", "openblas"):
        r = res[v]
        if "samples" in r:
            ms.append(metric("cpu.matmul_s", None, "s", False, samples=r["samples"],
                             labels={"blas": r["blas"]["name"], "n": n, "dtype": "float32"},
                             note=f"{n}x{n} @ {n}x{n} fp32 on {r['device']}, library {r['blas']['library']}"))
    if "speedup" in res:
        ms.append(metric("cpu.blas_speedup", res["speedup"], "ratio", True,
                         note="median bundled-BLAS time / median OpenBLAS time, measured side by side in this run"))
    print(f"  matmul {n}: speedup with OpenBLAS {res.get('speedup', float('nan')):.1f}x", file=sys.stderr)
    return ms, {"blas_compare": res}


MAX_WARMUP, MAX_REPEATS = 1000, 100_000


def _check_args(args) -> None:
    """Every flag's range before anything is built (each message names its flag)."""
    from ..errors import UsageError
    from ..outputs import check_number, check_output

    check_number(args.dropout, "--dropout", low=0, example="0.1", why="a probability below 1")
    if args.dropout is not None and args.dropout >= 1:
        raise UsageError(f"--dropout {args.dropout} is too large: it must be below 1 (a probability), e.g. --dropout 0.1")
    check_number(args.warmup, "--warmup", low=0, high=MAX_WARMUP, example="2", why="untimed steps before the timed ones")
    check_number(args.repeats, "--repeats", low=1, high=MAX_REPEATS, example="8", why="timed steps")
    check_number(args.gen_prompt, "--gen-prompt", low=1, example="64")
    check_number(args.gen_tokens, "--gen-tokens", low=1, example="64")
    for flag, vals in (("--batch", args.batch), ("--seq", args.seq)):
        for v in vals or []:
            check_number(v, flag, low=1, example="4" if flag == "--batch" else "128")
    check_output(args.out, replaces="report")


def run(args) -> int:
    from reference.config import PRESETS

    from ..perf.bench import BenchConfig, initial_weights, model_config, run_config
    from ..environment import fingerprint, hardware_label
    from ..errors import UsageError
    from ..report import make_report, write_report

    if args.config not in PRESETS:
        raise UsageError(f"--config {args.config!r} is not a preset; choose one of {', '.join(PRESETS)}")
    _check_args(args)
    env = fingerprint()
    gpu = (env.get("mlx") or {}).get("backend") in ("cuda", "metal")
    batches = args.batch or ([4] if args.quick else [4, 8])
    seqs = args.seq or ([128] if args.quick else [128, 256])
    dtypes = args.dtype or (["bfloat16"] if gpu else ["float32"])
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 8)
    if args.memory_limit_gb is not None:
        from reference.train import TrainConfig

        TrainConfig(memory_limit_gb=args.memory_limit_gb)  # the trainer's own check (InputError, exit 2)
    frameworks = ["mlx"] + (["torch"] if args.twin else []) + (["torch-compile"] if args.torch_compile else [])
    if len(frameworks) > 1:
        try:
            import torch  # noqa: F401
        except ImportError:
            raise UsageError("--twin/--torch-compile need PyTorch: pip install -e '.[torch]'") from None
    metrics, details = [], []
    print(f"bench on {hardware_label(env)}", file=sys.stderr)
    for b, s, dt, gc in itertools.product(batches, seqs, dtypes, args.grad_checkpoint):
        weights = None
        for fw in frameworks:
            opts = (("memory_limit_gb", args.memory_limit_gb),) if fw == "mlx" and args.memory_limit_gb else ()
            bc = BenchConfig(preset=args.config, batch=b, seq=s, dtype=dt, grad_checkpoint=gc == "on",
                             framework=fw, warmup=warmup, repeats=repeats, dropout=args.dropout,
                             train_options=opts)
            try:
                model_config(bc)
            except ValueError as e:
                raise UsageError(f"--seq {s}: {e}; pass a shorter --seq") from None
            if weights is None and len(frameworks) > 1:
                weights = initial_weights(bc)
            ms, d = run_config(bc, env, train=not args.no_train,
                               generate=not args.no_generate and b == batches[0] and gc == "off",
                               weights=weights, gen_prompt=args.gen_prompt, gen_tokens=args.gen_tokens)
            metrics += ms
            details.append(d)
            tps = next((m for m in ms if m["name"] == "train.tokens_per_s"), None)
            msg = d.get("skipped") or (f"{tps['value']:,.0f} tok/s" if tps else "done")
            print(f"  {fw:13s} b={b} s={s} {dt} ckpt={gc}: {msg}", file=sys.stderr)
    if args.blas:
        ms, d = _blas_metrics(repeats, warmup)
        metrics += ms
        details.append(d)
    config = {"preset": args.config, "batch": batches, "seq": seqs, "dtype": dtypes, "dropout": args.dropout,
              "gen_prompt": args.gen_prompt, "gen_tokens": args.gen_tokens,
              "grad_checkpoint": args.grad_checkpoint, "frameworks": frameworks, "quick": args.quick}
    report = make_report("bench", config, metrics, "ok" if metrics else "skipped",
                         measurement={"warmup": warmup, "repeats": repeats, "method": MEASUREMENT},
                         details=details, environment=env)
    print(write_report(report, args.out))
    return 0
