"""`harness eval`: score bash completions in a sandbox and write an eval report.

    harness eval --samples FILE.jsonl [--tasks PATH] [--k 1,10] --out REPORT.json
    harness eval --checkpoint DIR [--n 10 --temperature 0.8 ...] --out REPORT.json   (generates, then scores)
    harness eval --checkpoint DIR --generate-only --out REPORT.json                (generates; scored later)
    harness eval --canonical --out REPORT.json                                     (the suite's own solutions)
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import Counter
from pathlib import Path

from ..errors import CheckFailed, UsageError
from ..outputs import check_input, check_number, check_output, check_workers, report_destination

MIN_TIMEOUT_S = 0.05  # a sandboxed `true` takes about 10 ms to start and finish
MAX_TIMEOUT_S = 86400.0


def add_arguments(p):
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--samples", metavar="FILE.jsonl", help='completions, one {"task_id", "completion"} per line '
                                                             '(.jsonl or .jsonl.gz), or MultiPL-E completion files '
                                                             '(a folder of, or one, .json.gz with "completions")')
    src.add_argument("--checkpoint", metavar="DIR", help="generate --n samples per task with the reference model")
    src.add_argument("--canonical", action="store_true", help="score the suite's own canonical solutions")
    from ..models import add_arguments as add_model_arguments

    add_model_arguments(p, src)
    p.add_argument("--tasks", metavar="PATH", default=None,
                   help="task suite directory (default fixtures/tasks) or a MultiPL-E problem file (.json/.jsonl)")
    p.add_argument("--k", default="1,10", help="comma-separated k for pass@k (default 1,10); pass@k is reported "
                                               "only when every task has at least k samples")
    p.add_argument("--out", required=True, metavar="REPORT.json", help="where to write the eval report")
    p.add_argument("--workers", type=int, default=max(2, os.cpu_count() or 2),
                   help="programs run in parallel (default: CPU count, at least 2)")
    p.add_argument("--timeout", type=float, default=10.0, help="wall-clock seconds per program (default 10)")
    p.add_argument("--limit", type=int, default=None, help="only the first N tasks (sorted by task id)")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="run completions WITHOUT bubblewrap (rlimits and timeouts only); recorded in the report")
    p.add_argument("--no-check", action="store_true", help="skip the soundness check of the problems")
    p.add_argument("--no-quality", action="store_true", help="skip syntax/shellcheck/BLEU/CodeBLEU metrics")
    p.add_argument("--repeat", type=int, default=1, metavar="R",
                   help="run every sample R times (scores come from the first run) and report eval.flaky_rate, the "
                        "share of samples whose verdict changed, and eval.near_timeout (default 1)")
    g = p.add_argument_group("generation (--checkpoint, --model, --api-base)")
    g.add_argument("--n", type=int, default=10, help="samples per task (default 10)")
    g.add_argument("--temperature", type=float, default=0.8)
    g.add_argument("--max-tokens", type=int, default=256)
    g.add_argument("--top-k", type=int, default=0)
    g.add_argument("--top-p", type=float, default=0.95)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--generate-only", action="store_true",
                   help="generate and write the samples (REPORT.samples.jsonl) and a report with the sampling metrics "
                        "(eval.sampling_*), but run no program: no sandbox needed (e.g. on a GPU machine without "
                        "bubblewrap); the report says it was not scored (status skipped, config.scored false); "
                        "score later with `harness eval --samples REPORT.samples.jsonl ...`")


def _generate(args, suite, out: Path) -> tuple[Path, dict, list[dict]]:
    """Sample every task, write the samples file; (its path, the config it adds, the sampling metrics)."""
    try:
        from ..models import Sampling, open_backend, progress, sample_tasks
        from ..models.speed import Speed, generation_config
    except ImportError as e:
        raise UsageError(f"generating needs MLX ({e}); install the 'cpu' or 'cuda' extra") from None
    from ..report import atomic_write_text

    backend = open_backend(args)
    sampling = {"n": args.n, "max_tokens": args.max_tokens, "temperature": args.temperature, "top_k": args.top_k,
                "top_p": args.top_p, "seed": args.seed}
    speed = Speed()

    def on_chunk(_, c):
        speed.add(c.result, len(c.texts))
        bar.update(len(c.texts))

    with progress(len(suite.tasks) * args.n) as bar:
        t0 = time.perf_counter()
        texts = sample_tasks(backend, [t.prompt for t in suite.tasks], n=args.n, seed=args.seed,
                             sampling=Sampling(args.max_tokens, args.temperature, args.top_k, args.top_p),
                             stops=[list(t.stop_tokens) for t in suite.tasks], on_chunk=on_chunk)
        speed.wall_s = time.perf_counter() - t0
    lines = [json.dumps({"task_id": t.task_id, "completion": c})
             for t, cs in zip(suite.tasks, texts) for c in cs]
    path = _samples_path(out)
    atomic_write_text(path, "\n".join(lines) + "\n")
    print(f"harness eval: wrote {len(lines)} samples to {path}; sampling: {speed.line()}", file=sys.stderr)
    info = getattr(backend, "checkpoint", None)
    rows = min(args.n, backend.max_batch or args.n)
    gen = {"model": backend.info, "sampling": sampling, "seed": args.seed,
           "generation": generation_config(backend, rows_per_call=rows, calls=len(speed.call_s))}
    if info:
        gen["checkpoint"] = {k: info.get(k) for k in ("path", "step", "stage", "tokenizer_sha256")}
    return path, gen, speed.metrics(why_unknown=getattr(backend, "timing_unknown", ""))


def run(args) -> int:
    from ..eval.evaluate import evaluate
    from ..eval.execute import Executor
    from ..eval.passk import parse_ks
    from ..report import write_report
    from ..sandbox.sandbox import Limits, Sandbox
    from ..eval.tasks import Sample, SampleSet, load_suite, read_samples

    try:
        ks = parse_ks(args.k)
    except ValueError as e:
        raise UsageError(f"--k {args.k!r}: {e}; pass e.g. --k 1,10") from None
    for name, v in (("--n", args.n), ("--max-tokens", args.max_tokens)):
        if v < 1:
            raise UsageError(f"{name} must be at least 1, got {v}")
    generating = bool(args.checkpoint or args.model or args.api_base)
    if args.generate_only and not generating:
        raise UsageError(f"--generate-only with {'--canonical' if args.canonical else '--samples'}: there is nothing "
                         "to generate; --generate-only needs a model to sample from (--checkpoint, --model or "
                         "--api-base), or drop it to score these samples")
    check_workers(args.workers)
    # below MIN_TIMEOUT_S not even `true` finishes in the sandbox: every program would read as a timeout
    check_number(args.timeout, "--timeout", low=MIN_TIMEOUT_S, high=MAX_TIMEOUT_S, example="10",
                 why="seconds per program; starting one in the sandbox alone takes about 10 ms")
    check_number(args.temperature, "--temperature", low=0, example="0.8")
    check_number(args.top_p, "--top-p", low=0, high=1, low_open=True, example="0.95")
    if not 0 <= args.seed < 2**32:
        raise UsageError(f"--seed {args.seed} must be from 0 to 2**32 - 1, e.g. --seed 0")
    check_number(args.repeat, "--repeat", low=1, high=100, example="2", why="runs of every sample")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be at least 1, got {args.limit}")
    if args.samples:
        check_input(args.samples, "--samples", kind="any",  # a folder: MultiPL-E's completion files
                    hint='pass a JSONL file of {"task_id", "completion"} lines or a folder of MultiPL-E completions')
    out = check_output(args.out, inputs=[("--samples", args.samples), ("--tasks", args.tasks),
                                         ("--checkpoint", args.checkpoint)], replaces="report")
    if generating:
        check_output(_samples_path(out), "--out (its samples file)",
                     inputs=[("--tasks", args.tasks), ("--checkpoint", args.checkpoint)])
    suite = load_suite(args.tasks)
    if not suite.tasks:
        first = suite.load_issues[0] if suite.load_issues else {}
        raise UsageError(f"--tasks {suite.source}: none of its {len(suite.load_issues)} problems can be used "
                         f"(first: {first.get('reason', 'unreadable')}); fix the problem file, nothing was scored")
    all_ids = {t.task_id for t in suite.tasks}
    if args.limit is not None:
        suite.tasks = sorted(suite.tasks, key=lambda t: t.task_id)[:args.limit]
    if args.unsafe_no_sandbox and not args.generate_only:
        print("harness eval: WARNING: --unsafe-no-sandbox: completions run WITHOUT isolation on this machine "
              "(rlimits and timeouts only); the report records isolation 'none'", file=sys.stderr)

    def make_sandbox():
        return Sandbox(Limits(wall_s=args.timeout, cpu_s=max(1, math.ceil(args.timeout))),
                       unsafe=args.unsafe_no_sandbox, slots=args.workers)

    # before generating: a missing bwrap fails at once (--generate-only runs no program: no sandbox)
    sandbox = make_sandbox() if generating and not args.generate_only else None
    extra = {"limit": args.limit}
    sampling_metrics: list[dict] = []
    if args.canonical:
        if suite.format != "own":
            raise UsageError(f"--canonical needs the project's task format; {args.tasks} is a MultiPL-E file "
                             "without canonical solutions")
        with_sol = [t for t in suite.tasks if t.canonical is not None]
        samples = SampleSet(f"canonical solutions of {suite.name}",
                            [Sample(t.task_id, t.canonical, 0, 0) for t in with_sol], Counter(), [])
    else:
        path = Path(args.samples) if args.samples else None
        if generating:
            path, gen, sampling_metrics = _generate(args, suite, out)
            extra.update(gen)
            if args.generate_only:
                return _write_unscored(args, suite, path, extra, sampling_metrics, out)
        from ..eval.sample_files import read_any_samples

        samples, extra["samples_sha256"] = read_any_samples(path, all_ids, read_samples)
        if not generating:
            sampling_metrics = _adopt_sampling_report(path, extra)
        keep = {t.task_id for t in suite.tasks}
        dropped = sum(s.task_id not in keep for s in samples.samples)
        samples.samples = [s for s in samples.samples if s.task_id in keep]
        if dropped:
            extra["samples_outside_limit"] = dropped
    if not samples.samples:
        raise UsageError(_nothing_to_score(args, suite, samples, out))
    sandbox = sandbox or make_sandbox()
    report = evaluate(suite, samples, Executor(sandbox), ks, workers=args.workers, check=not args.no_check,
                      quality=not args.no_quality, progress=sys.stderr.isatty(), config=extra, repeat=args.repeat)
    report["metrics"] += sampling_metrics
    errors = next((int(m["value"] or 0) for m in report["metrics"] if m["name"] == "eval.status.error"), 0)
    written = write_report(report, report_destination(out, succeeded=not errors))
    vals = {m["name"]: m["value"] for m in report["metrics"]}
    keys = [f"eval.pass@{k}" for k in ks] + [f"eval.pass@{k}.sound" for k in ks]
    parts = [f"{k}={vals[k]:.4f}" for k in keys if vals.get(k) is not None]
    parts += [f"{k.split('.', 1)[1]}={'-' if vals[k] is None else int(vals[k])}"
              for k in ("eval.tasks", "eval.samples", "eval.unsound_problems", "eval.bad_sample_lines")]
    if vals.get("eval.flaky_rate") is not None:
        parts.append(f"flaky_rate={vals['eval.flaky_rate']:.4f} near_timeout={int(vals['eval.near_timeout'])}")
    print(" ".join(parts + [f"isolation={sandbox.isolation['kind']}", f"status={report['status']}",
                            f"report={written}"]))
    if errors:
        first = next((smp.get("detail") for t in report["details"]["tasks"] for smp in t["samples"]
                      if smp.get("status") == "error"), None)
        kept = f"; {out} was left as it was" if written != out else ""
        raise CheckFailed(f"{errors} of {int(vals.get('eval.samples') or 0)} programs could not run in the sandbox "
                          f"(first: {first or 'no detail'}), so the scores are incomplete: the report {written} has "
                          f"status {report['status']}{kept}; fix the sandbox and run again")
    return 0


def _write_unscored(args, suite, samples: Path, config: dict, sampling_metrics: list[dict], out: Path) -> int:
    """--generate-only: a report with the sampling metrics that says it was not scored, and how to score it."""
    import shlex

    from ..eval.sample_files import samples_sha256
    from ..report import make_report, write_report

    sha = samples_sha256(samples)  # the file just written: its digest, as scoring it later will record it
    score = ["harness", "eval", "--samples", str(samples), *(["--tasks", args.tasks] if args.tasks else []),
             *(["--limit", str(args.limit)] if args.limit is not None else []), "--k", args.k,
             "--out", str(out.with_name(out.stem + ".scored.json"))]
    how = shlex.join(score)
    cfg = {"tasks": suite.describe(), "samples": str(samples), "samples_sha256": sha, "scored": False,
           **config}
    details = {"not_scored": f"--generate-only: the samples were generated and written, no program was run; score "
                             f"them where bubblewrap is installed: {how}"}
    report = make_report("eval", cfg, sampling_metrics, "skipped", details=details)
    written = write_report(report, out)
    vals = {m["name"]: m["value"] for m in sampling_metrics}
    shown = [(k.removeprefix("eval."), vals.get(k)) for k in (
        "eval.sampling_s", "eval.sampling_samples", "eval.sampling_tokens", "eval.sampling_tokens_per_s",
        "eval.sampling_decode_tokens_per_s", "eval.sampling_first_token_s")]
    print(" ".join([*(f"{k}={'-' if v is None else f'{v:.4g}'}" for k, v in shown), "scored=no",
                    f"status={report['status']}", f"report={written}"]))
    print(f"harness eval: not scored (--generate-only): no program was run; to score the samples, run where "
          f"bubblewrap is installed: {how}", file=sys.stderr)
    return 0


def _samples_path(out: Path) -> Path:
    return out.with_name(out.stem + ".samples.jsonl")


# what a scored report takes over from the report that generated its samples
_SAMPLED_CONFIG = ("model", "sampling", "seed", "generation", "checkpoint")


def _adopt_sampling_report(samples: Path, config: dict) -> list[dict]:
    """Scoring R.samples.jsonl that `harness eval` wrote next to its report R.json (e.g. with --generate-only on a
    machine without bubblewrap): when R.json is an eval report of exactly these samples (same samples_sha256),
    the scored report names its model, sampling settings and decoder (config, plus config.sampled_by) and carries
    its eval.sampling_* metrics, so one report holds both the scores and how the samples were made. A sibling
    report of other samples is ignored with a note; without one nothing changes."""
    from ..environment import hardware_label
    from ..report import load_report

    name = samples.name
    if not name.endswith(".samples.jsonl"):
        return []
    origin = samples.with_name(name[:-len(".samples.jsonl")] + ".json")
    if not origin.is_file():
        return []
    try:
        rep = load_report(origin)
    except UsageError as e:
        print(f"harness eval: note: {origin} next to the samples is not a usable report ({e}); not adopted",
              file=sys.stderr)
        return []
    cfg = rep.get("config") or {}
    if rep.get("kind") != "eval" or cfg.get("samples_sha256") != config.get("samples_sha256"):
        print(f"harness eval: note: {origin} next to the samples is not the eval report that generated them "
              f"(kind {rep.get('kind')}, samples_sha256 {str(cfg.get('samples_sha256'))[:12]}... vs "
              f"{str(config.get('samples_sha256'))[:12]}...); its model and sampling time are not adopted",
              file=sys.stderr)
        return []
    config.update({k: cfg[k] for k in _SAMPLED_CONFIG if k in cfg})
    config["sampled_by"] = {"report": str(origin), "created_at": rep.get("created_at"), "git": rep.get("git"),
                            "hardware": hardware_label(rep.get("environment") or {})}
    print(f"harness eval: the samples come from {origin} (same sha256): its model, sampling settings and "
          f"eval.sampling_* metrics go into this report", file=sys.stderr)
    where = f"sampled on {config['sampled_by']['hardware']} ({origin.name}), not on the machine that scored"
    return [{**m, "note": f"{m['note']}; {where}" if m.get("note") else where}
            for m in rep.get("metrics", []) if m["name"].startswith("eval.sampling_")]


def _nothing_to_score(args, suite, samples, out: Path) -> str:
    """The message of a run with no sample to score (no report is written, an existing one stays)."""
    keep = f"; nothing was scored{' and ' + str(out) + ' was left as it was' if out.exists() else ''}"
    if args.canonical:
        return f"--canonical: no task of {suite.source} has a solution.sh{keep}"
    bad = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in sorted(samples.bad.items()))
    src = f"--samples {args.samples}" if args.samples else f"the samples generated from --checkpoint {args.checkpoint}"
    what = (f"has no usable line ({bad})" if bad else "is empty") if not args.limit else \
        f"has no sample of the first {args.limit} tasks (--limit)" + (f"; bad lines: {bad}" if bad else "")
    return (f"{src} {what}{keep}; pass a JSONL file with one {{\"task_id\", \"completion\"}} per line whose task_id "
            f"names a task of {suite.source} (e.g. {suite.tasks[0].task_id if suite.tasks else '-'})")
