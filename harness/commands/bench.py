"""`harness bench`: measure one preset on this machine (training and generation; optionally the PyTorch
twin from the same weights in the same run) and write a report."""
from __future__ import annotations

import itertools
import sys


MEASUREMENT = ("optimizer steps run as a training loop runs them: step i+1 is queued before step i's loss is read "
               "back (MLX: mx.async_eval of the updated state and the loss, then loss.item(); torch: the loss "
               "copied to pinned memory behind a CUDA event); a sample is the wall time between two successive "
               "completions; tokens/s = batch*seq/sample. Generation: batch-1 greedy decoding, tokens after the "
               "first per second, and time to first token; with --gen-n, n rows of one prompt decoded together (the pass@k case), "
               "tokens/s summed over the rows; the PyTorch twin's generation runs in a process of its own, without the "
               "OpenBLAS preload (details.generate[].process says how)")


RUNS_METHOD = ("; with several runs the whole measurement (model build, compile, warm-up, timed steps) is repeated, "
               "runs interleaved across configurations: a metric's samples pool all runs' steps and `runs` holds "
               "each run's median, the unit harness compare tests (steps of one run are consecutive, not "
               "independent draws)")


def add_arguments(p):
    p.add_argument("--config", required=True, help="model preset (harness configs lists them)")
    p.add_argument("--out", required=True, help="report path (JSON)")
    p.add_argument("--quick", action="store_true", help="one small shape, 5 runs of 5 timed steps (under a minute for small on 2 CPU cores): "
                        "enough for harness compare to decide a 20%% change")
    p.add_argument("--batch", type=int, nargs="+", help="batch sizes (default 4 and 8; quick: 4)")
    p.add_argument("--seq", type=int, nargs="+", help="sequence lengths (default 128 and 256; quick: 128)")
    p.add_argument("--dtype", nargs="+", default=None, choices=["float32", "bfloat16"],
                   help="default float32 on CPU, bfloat16 on GPU")
    p.add_argument("--grad-checkpoint", nargs="+", default=["off"], choices=["on", "off"])
    p.add_argument("--twin", action="store_true", help="also run the PyTorch twin (eager) from the same weights")
    p.add_argument("--torch-compile", action="store_true", help="also run the twin under torch.compile")
    p.add_argument("--mlx-lm", action="store_true",
                   help="also decode with mlx-lm's BatchGenerator on the same weights (generation only; needs mlx-lm)")
    p.add_argument("--gen-n", type=int, nargs="+", default=[1], metavar="N",
                   help="generation benchmark: rows of one prompt decoded together, one measurement per N "
                        "(default 1; pass@k sampling decodes n = 10 to 200 rows, e.g. --gen-n 1 20 100)")
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
    p.add_argument("--runs", type=int, default=None,
                   help="repeat the whole measurement (build, compile, warm-up, timed steps) this many times, "
                        "interleaved across configurations; each metric keeps its per-run medians, which "
                        "`harness compare` tests (default 5 with --quick, else 1)")
    p.add_argument("--until-decided", metavar="BASE.json",
                   help="after --runs, compare with BASE.json and add runs until no timing is inconclusive "
                        "(or --max-runs); BASE.json should itself have several runs")
    p.add_argument("--max-runs", type=int, default=30, help="--until-decided stops here (default 30)")


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


MAX_WARMUP, MAX_REPEATS, MAX_RUNS = 1000, 100_000, 1000


def _check_args(args) -> None:
    """Every flag's range before anything is built (each message names its flag)."""
    from ..errors import UsageError
    from ..outputs import check_number, check_output

    check_number(args.dropout, "--dropout", low=0, example="0.1", why="a probability below 1")
    if args.dropout is not None and args.dropout >= 1:
        raise UsageError(f"--dropout {args.dropout} is too large: it must be below 1 (a probability), e.g. --dropout 0.1")
    check_number(args.warmup, "--warmup", low=0, high=MAX_WARMUP, example="2", why="untimed steps before the timed ones")
    check_number(args.repeats, "--repeats", low=1, high=MAX_REPEATS, example="8", why="timed steps")
    check_number(args.runs, "--runs", low=1, high=MAX_RUNS, example="5", why="repeats of the whole measurement")
    check_number(args.max_runs, "--max-runs", low=1, high=MAX_RUNS, example="30")
    if args.until_decided:
        from ..outputs import check_input

        check_input(args.until_decided, "--until-decided", hint="pass a bench report written by harness bench")
    check_number(args.gen_prompt, "--gen-prompt", low=1, example="64")
    check_number(args.gen_tokens, "--gen-tokens", low=1, example="64")
    for v in args.gen_n:
        check_number(v, "--gen-n", low=1, high=4096, example="20", why="rows decoded together")
    for flag, vals in (("--batch", args.batch), ("--seq", args.seq)):
        for v in vals or []:
            check_number(v, flag, low=1, example="4" if flag == "--batch" else "128")
    check_output(args.out, replaces="report")


def _until_decided(args, env, config, per_config, one_run, done: int) -> dict:
    """Add runs until harness compare against BASE decides every timing (or --max-runs)."""
    from ..perf.compare import compare_reports
    from ..report import load_report, make_report, merge_runs

    base = load_report(args.until_decided)
    history = []
    while True:
        probe = make_report("bench", config, [m for r in per_config for m in merge_runs(r)], environment=env)
        cmp = compare_reports(base, probe)
        if not cmp.comparable:
            from ..errors import UsageError

            raise UsageError(f"--until-decided {args.until_decided} is not comparable with this run: "
                             f"{cmp.mismatch_message()}; benchmark the same configuration on the same machine")
        open_rows = [r for r in cmp.inconclusive if r.more is not None and r.method == "runs"]
        history.append({"runs": done, "inconclusive": [r.key for r in cmp.inconclusive]})
        if not open_rows or done >= args.max_runs:
            break
        add = min(max(r.more for r in open_rows), args.max_runs - done, max(2, done // 2))
        print(f"harness bench: {len(open_rows)} timing(s) inconclusive after {done} runs "
              f"({', '.join(r.key for r in open_rows)}); adding {add}", file=sys.stderr)
        for r in range(done, done + add):
            one_run(r)
        done += add
    return {"base": args.until_decided, "runs": done, "history": history,
            "still_inconclusive": history[-1]["inconclusive"]}


def run(args) -> int:
    from reference.config import PRESETS

    from ..perf.bench import BenchConfig, initial_weights, model_config, run_config
    from ..environment import fingerprint, hardware_label
    from ..errors import UsageError
    from ..report import make_report, merge_runs, write_report

    if args.config not in PRESETS:
        raise UsageError(f"--config {args.config!r} is not a preset; choose one of {', '.join(PRESETS)}")
    _check_args(args)
    env = fingerprint()
    gpu = (env.get("mlx") or {}).get("backend") in ("cuda", "metal")
    batches = args.batch or ([4] if args.quick else [4, 8])
    seqs = args.seq or ([128] if args.quick else [128, 256])
    dtypes = args.dtype or (["bfloat16"] if gpu else ["float32"])
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    repeats = args.repeats if args.repeats is not None else (5 if args.quick else 8)
    if args.memory_limit_gb is not None:
        from reference.train import TrainConfig

        TrainConfig(memory_limit_gb=args.memory_limit_gb)  # the trainer's own check (InputError, exit 2)
    frameworks = (["mlx"] + (["mlx-lm"] if args.mlx_lm and not args.no_generate else [])
                  + (["torch"] if args.twin else []) + (["torch-compile"] if args.torch_compile else []))
    if "mlx-lm" in frameworks:
        try:
            import mlx_lm  # noqa: F401
        except ImportError:
            raise UsageError("--mlx-lm needs mlx-lm: pip install mlx-lm") from None
    if any(f.startswith("torch") for f in frameworks):
        try:
            import torch  # noqa: F401
        except ImportError:
            raise UsageError("--twin/--torch-compile need PyTorch: pip install -e '.[torch]'") from None
    runs = args.runs if args.runs is not None else (5 if args.quick else 1)
    config = {"preset": args.config, "batch": batches, "seq": seqs, "dtype": dtypes, "dropout": args.dropout,
              "gen_prompt": args.gen_prompt, "gen_tokens": args.gen_tokens, "gen_n": list(args.gen_n),
              "grad_checkpoint": args.grad_checkpoint, "frameworks": frameworks, "quick": args.quick}
    print(f"bench on {hardware_label(env)}", file=sys.stderr)
    plan = []  # (BenchConfig, weights key) in the order they run
    for b, s, dt, gc in itertools.product(batches, seqs, dtypes, args.grad_checkpoint):
        for fw in frameworks:
            opts = (("memory_limit_gb", args.memory_limit_gb),) if fw == "mlx" and args.memory_limit_gb else ()
            bc = BenchConfig(preset=args.config, batch=b, seq=s, dtype=dt, grad_checkpoint=gc == "on",
                             framework=fw, warmup=warmup, repeats=repeats, dropout=args.dropout,
                             train_options=opts)
            try:
                model_config(bc)
            except ValueError as e:
                raise UsageError(f"--seq {s}: {e}; pass a shorter --seq") from None
            plan.append((bc, (b, s, dt, gc), b == batches[0] and gc == "off"))
    weights_cache: dict = {}
    per_config: list[list] = [[] for _ in plan]
    details: list = [None] * len(plan)

    def one_run(r: int):
        for i, (bc, wkey, gen_ok) in enumerate(plan):
            weights = None
            if len(frameworks) > 1:
                if wkey not in weights_cache:
                    weights_cache.clear()  # one shape's weights at a time
                    weights_cache[wkey] = initial_weights(bc)
                weights = weights_cache[wkey]
            ms, d = run_config(bc, env, train=not args.no_train and bc.framework != "mlx-lm",
                               generate=not args.no_generate and gen_ok, weights=weights,
                               gen_prompt=args.gen_prompt, gen_tokens=args.gen_tokens, gen_n=tuple(args.gen_n))
            per_config[i].append(ms)
            details[i] = d
            tps = next((m for m in ms if m["name"] == "train.tokens_per_s"), None)
            msg = d.get("skipped") or (f"{tps['value']:,.0f} tok/s" if tps else "done")
            print(f"  {bc.framework:13s} b={bc.batch} s={bc.seq} {bc.dtype} ckpt={'on' if bc.grad_checkpoint else 'off'}"
                  f"{f' run {r + 1}' if runs > 1 or args.until_decided else ''}: {msg}", file=sys.stderr)

    for r in range(runs):
        one_run(r)
    done = runs
    decided = None
    if args.until_decided:
        decided = _until_decided(args, env, config, per_config, one_run, done)
        done = decided["runs"]
    metrics = [m for runs_i in per_config for m in merge_runs(runs_i)]
    details = [d for d in details if d is not None]
    if decided:
        details.append({"until_decided": decided})
    if args.blas:
        ms, d = _blas_metrics(repeats, warmup)
        metrics += ms
        details.append(d)
    report = make_report("bench", config, metrics, "ok" if metrics else "skipped",
                         measurement={"warmup": warmup, "repeats": repeats, "runs": done,
                                      "method": MEASUREMENT + RUNS_METHOD},
                         details=details, environment=env)
    print(write_report(report, args.out))
    return 0
