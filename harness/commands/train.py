"""`harness train`: stage 1 pretrains on the language corpus; stage 2 (`--init` a stage-1 run) fine-tunes
on the bash corpus. Settings come from `--config` (a preset name, a name under configs/, or a JSON file
naming a preset plus overrides), then from explicit flags. Writes checkpoints, metrics.jsonl and the
train report (report.json) into --out.

Data-parallel: `mlx.launch --backend ring -n 2 -- harness train ...` (or --backend nccl on GPUs);
--batch-size is the global micro-batch, split over the processes; only rank 0 writes files."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..resources import bundled

CONFIG_DIR = bundled("configs")
# flags whose change on --resume makes the continuation differ from the original run
_REPLAYED = ("steps", "eval_every", "eval_batches", "save_every", "keep", "log_every", "compile")


def add_arguments(p):
    p.add_argument("--config", metavar="PRESET",
                   help="preset name (harness configs), a name in configs/ (e.g. pretrain-small) or a JSON file "
                        "{\"preset\": ..., settings...}; not needed with --resume")
    p.add_argument("--data", required=True, metavar="DIR", help="data directory written by `harness data`")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="run directory: checkpoints, metrics.jsonl, report.json")
    p.add_argument("--steps", type=int, metavar="N",
                   help="total optimizer steps of the run (with --resume: continue to this)")
    p.add_argument("--init", metavar="CHECKPOINT_DIR",
                   help="start from this checkpoint or run directory (stage 2); implies --stage finetune")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    p.add_argument("--resume-from", type=int, metavar="STEP",
                   help="continue the run in --out from its checkpoint of this step (implies --resume), e.g. when "
                        "the newest one is corrupt")
    p.add_argument("--force", action="store_true", help="delete the checkpoints already in --out and start over")
    p.add_argument("--stage", choices=["pretrain", "finetune"])
    p.add_argument("--corpus", choices=["text", "bash"], help="default: text for pretrain, bash for finetune")
    p.add_argument("--batch-size", type=int, help="sequences per micro-batch, over all processes")
    p.add_argument("--seq-len", type=int, help="tokens per sequence (default: the model's context)")
    p.add_argument("--accum", type=int, help="micro-batches accumulated per optimizer step")
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--min-lr", type=float, help="learning rate at the end of the cosine (default lr/10)")
    p.add_argument("--warmup", type=int, help="linear warm-up steps")
    p.add_argument("--decay-steps", type=int, help="step where the cosine reaches min-lr (default: --steps)")
    p.add_argument("--weight-decay", type=float, help="AdamW decoupled weight decay on tensors with ndim >= 2")
    p.add_argument("--grad-clip", type=float, help="clip the global gradient norm to this (0: off)")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], help="compute dtype (master weights stay fp32)")
    p.add_argument("--grad-checkpoint", action=__import__("argparse").BooleanOptionalAction, default=None,
                   help="recompute each block's activations in the backward pass")
    p.add_argument("--dropout", type=float)
    p.add_argument("--memory-limit-gb", type=float, metavar="GiB",
                   help="mx.set_memory_limit: MLX stops queueing work while more than this is allocated")
    p.add_argument("--seed", type=int)
    p.add_argument("--eval-every", type=int, help="steps between validation passes")
    p.add_argument("--eval-batches", type=int, help="batches per validation pass")
    p.add_argument("--save-every", type=int, help="steps between checkpoints")
    p.add_argument("--keep", type=int, metavar="N", help="checkpoints kept (newest)")
    p.add_argument("--no-compile", dest="compile", action="store_const", const=False, default=None,
                   help="run the step eagerly instead of through mx.compile")
    p.add_argument("--log-every", type=int, help="steps between progress-bar updates")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--dist-backend", default="any", help="mx.distributed backend under mlx.launch (default any)")


def _flag_overrides(args) -> dict:
    from reference.train import TrainConfig

    names = set(TrainConfig.__dataclass_fields__) - {"preset", "model"}
    return {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}


def resolve_config(name: str) -> dict:
    """A preset name, a configs/ name, or a JSON file -> a dict of TrainConfig settings."""
    from reference.config import PRESETS
    from reference.train import load_config_file

    from ..errors import UsageError

    p = Path(name)
    if p.is_file():
        return load_config_file(p)
    if name in PRESETS:
        return {"preset": name}
    named = CONFIG_DIR / f"{name}.json"
    if named.is_file():
        return load_config_file(named)
    have = sorted(x.stem for x in CONFIG_DIR.glob("*.json"))
    raise UsageError(f"--config {name!r} is neither a file, a preset ({', '.join(PRESETS)}) nor a config in "
                     f"{CONFIG_DIR} ({', '.join(have)})")


def build_config(args):
    from reference.train import TrainConfig
    from reference.trainer import config_for_resume

    from ..errors import UsageError

    flags = _flag_overrides(args)
    resume_from = getattr(args, "resume_from", None)
    if resume_from is not None:
        args.resume = True
    if args.resume:
        if args.config:
            print(f"harness train: note: --config {args.config} is ignored with --resume: the checkpoint's "
                  f"settings are used, with the flags given here on top", file=sys.stderr)
        cfg = config_for_resume(args.out, flags, resume_from)
        changed = sorted(k for k in flags if k not in _REPLAYED)
        if changed:
            print(f"harness train: note: --resume with changed {', '.join(changed)}: the continuation is not "
                  f"an exact replay of the original run", file=sys.stderr)
        return cfg
    if not args.config:
        raise UsageError("pass --config PRESET (see `harness configs`) or --resume")
    base = resolve_config(args.config)
    if args.init and "stage" not in flags:
        base["stage"] = "finetune"
    base.update(flags)
    return TrainConfig.from_dict(base, f"--config {args.config}")


def _mfu(result, environment: dict, tokens_per_s: float | None) -> tuple[float | None, str]:
    from reference.config import train_flops_per_token

    seq_len = result.config.seq_len or result.model_config.max_seq_len
    fpt = train_flops_per_token(result.model_config, seq_len)
    try:
        from ..perf.hardware import peak_flops
    except ImportError:
        return None, "harness.perf.hardware.peak_flops is not available; MFU not computed"
    peak = peak_flops(environment, result.config.dtype)
    if peak is None:
        return None, f"no peak FLOP/s known for this hardware in {result.config.dtype}; MFU not computed"
    value, source = peak
    if not tokens_per_s:
        return None, "no timed steps after warm-up; MFU not computed"
    total_peak = value * result.world_size
    return (fpt * tokens_per_s / total_peak,
            f"{fpt:.4g} FLOP/token (6N + 12LdT, reference.config.train_flops_per_token) x median tokens/s over "
            f"{result.world_size} x {value:.4g} FLOP/s peak ({source})")


def make_train_report(result, args, status: str, error: str | None = None) -> dict:
    import statistics

    from ..environment import fingerprint
    from ..report import make_report, metric
    from reference.trainer import WARMUP_STEPS

    env = fingerprint()
    tps = [result.tokens_per_step / t for t in result.step_times]
    median_tps = statistics.median(tps) if tps else None
    mfu, mfu_note = _mfu(result, env, median_tps)
    last_loss = result.losses[-1][1] if result.losses else None
    last_val = result.val[-1][1] if result.val else None
    import math
    metrics = [
        metric("train.loss", last_loss, "nats/token", False, note=f"training loss of the last step ({result.step})"),
        metric("train.val_loss", last_val, "nats/token", False,
               note=f"mean over {result.config.eval_batches} validation batches at step "
                    f"{result.val[-1][0] if result.val else '-'}"),
        metric("train.val_ppl", math.exp(min(last_val, 50)) if last_val is not None else None, "perplexity", False),
        metric("train.tokens_per_s", None, "tokens/s", True, samples=tps,
               note="per optimizer step, all processes together"),
        metric("train.step_time_s", None, "s", False, samples=result.step_times),
        metric("train.peak_memory_bytes", result.peak_memory_bytes, "bytes", False,
               note="mx.get_peak_memory(): the most memory MLX's allocator held (on CPU: host RAM for MLX "
                    "arrays, not the process RSS, which is in details.max_rss_bytes); rank 0"),
        metric("train.mfu", mfu, "fraction", True, note=mfu_note),
    ]
    from ..intervals import median_ci

    for m in metrics:  # the timings' 95% interval: a moving-block bootstrap of the consecutive steps' median
        if m["name"] in ("train.tokens_per_s", "train.step_time_s") and m.get("samples"):
            ci = median_ci(m["samples"])
            if ci is not None:
                m["stats"]["ci95"] = ci
    config = {**result.config.to_dict(), "model_config": result.model_config.to_dict(), "params": result.n_params,
              "data": str(Path(args.data)), "out": str(result.out_dir), "init": args.init,
              "resume": bool(args.resume), "world_size": result.world_size}
    details = {"stage": result.config.stage, "corpus": result.config.corpus_name, "start_step": result.start_step,
               "final_step": result.step, "tokens_seen": result.tokens_seen, "tokens_per_step": result.tokens_per_step,
               "wall_s": result.wall_s, "max_rss_bytes": result.max_rss_bytes, "checkpoint": result.checkpoint,
               "interrupted": result.interrupted, "losses": result.losses, "val_losses": result.val,
               "notes": result.notes, "error": error}
    if result.world_size > 1:
        from reference.distributed import bucket_bytes

        details["allreduce_bucket_bytes"] = bucket_bytes()  # gradients packed per all-reduce (HARNESS_DP_BUCKET_MB)
    return make_report("train", config, metrics, status, details=details,
                       measurement={"warmup": WARMUP_STEPS, "repeats": max(len(result.step_times), 1),
                                    "method": "wall time of each optimizer step (batch assembly, compiled step, "
                                              "mx.eval) after the first steps of this process (compilation)"},
                       environment=env)


def run(args) -> int:
    from reference import distributed
    from reference.trainer import TrainingDiverged, train

    from ..errors import CheckFailed
    from ..outputs import report_destination
    from ..report import write_report

    from ..outputs import check_input, check_output

    check_input(args.data, "--data", kind="dir", hint="pass the data directory written by `harness data`")
    if args.init:
        check_input(args.init, "--init", kind="dir", hint="pass a run directory or one of its ckpt-* directories")
    check_output(args.out, inputs=[("--data", args.data), ("--init", args.init)], kind="dir")
    if args.config and Path(args.config).is_dir():
        from ..errors import UsageError

        raise UsageError(f"--config {args.config} is a directory, not a config file; pass a preset name or a JSON file")
    cfg = build_config(args)
    dist = distributed.init(args.dist_backend)
    out = Path(args.out)
    holder = {}

    try:
        result = train(cfg, args.data, out, init=args.init, resume=args.resume, force=args.force,
                       progress=not args.no_progress, dist=dist, result_holder=holder,
                       resume_step=args.resume_from)
    except TrainingDiverged as e:
        if dist.is_main and "result" in holder:
            path = write_report(make_train_report(holder["result"], args, "failed", str(e)),
                                report_destination(out / "report.json", False, "failed"))
            raise CheckFailed(f"{e}; report: {path}") from None
        raise CheckFailed(str(e)) from None
    if not dist.is_main:
        return 130 if result.interrupted else 0
    status = "partial" if result.interrupted else "ok"
    # an interrupted continuation (--resume) leaves the earlier segment's report as it was
    path = write_report(make_train_report(result, args, status),
                        report_destination(out / "report.json", not result.interrupted, "partial"))
    print(json.dumps({"report": str(path), "checkpoint": result.checkpoint, "step": result.step,
                      "loss": result.losses[-1][1] if result.losses else None,
                      "val_loss": result.val[-1][1] if result.val else None}))
    if result.interrupted:
        print(f"harness train: interrupted; saved {result.checkpoint}; continue with --resume", file=sys.stderr)
        return 130
    return 0
