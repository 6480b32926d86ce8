"""Samples -> sandboxed executions -> per-task results -> an eval report (pass@k over all problems and over the
sound ones, per-category pass@1, status counts, quality metrics), with the problems that cannot be scored
fairly listed separately with their reasons."""
from __future__ import annotations

import shutil
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .execute import STATUSES, Execution, Executor, check_soundness, program
from .passk import suite_pass_at_k
from ..report import make_report, metric
from .tasks import SampleSet, Suite, Task


@dataclass
class Scored:
    task: Task
    results: list[tuple[object, Execution]]   # (Sample, Execution) in sample order

    @property
    def n(self) -> int:
        return len(self.results)

    @property
    def c(self) -> int:
        return sum(ex.passed for _, ex in self.results)


def has_code(completion: str) -> bool:
    """Whether a completion has a line other than blank lines and comments (first non-blank character #)."""
    return any(ln.strip() and not ln.lstrip().startswith("#") for ln in completion.splitlines())


def _pool_map(fn, items: list, workers: int, desc: str, progress: bool) -> list:
    from tqdm import tqdm

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(tqdm(pool.map(fn, items), total=len(items), desc=desc, file=sys.stderr, disable=not progress,
                         leave=False))


def soundness(tasks: list[Task], executor: Executor, workers: int, progress: bool = True) -> dict[str, dict]:
    """task_id -> {"reasons", "unpassable", "runs"} for every unsound problem."""
    checked = _pool_map(lambda t: check_soundness(t, executor), tasks, workers, "checking problems", progress)
    return {t.task_id: c for t, c in zip(tasks, checked) if c["reasons"]}


def _quality(scored: list[Scored], workers: int, progress: bool) -> dict | None:
    """Syntax, ShellCheck, BLEU and CodeBLEU of each program as its format defines it (own: prompt +
    completion; MultiPL-E: + "\\n" + tests, where the function's closing brace lives), against the
    canonical program where the task has one."""
    try:
        from .metrics.quality import quality_metrics
    except ImportError:
        return None
    progs, refs = [], []
    for s in scored:
        ref = program(s.task, s.task.canonical) if s.task.canonical is not None else None
        for sample, _ in s.results:
            progs.append(program(s.task, sample.completion))
            refs.append(ref)
    if not progs:
        return None
    try:
        return quality_metrics(progs, refs, shellcheck=shutil.which("shellcheck") is not None, workers=workers,
                               progress=progress)
    except Exception as e:  # a metric's bug must not throw away minutes of sandboxed runs; it is reported
        msg = f"quality metrics failed ({type(e).__name__}: {e}); pass@k and the run results are unaffected"
        print(f"harness eval: warning: {msg}", file=sys.stderr)
        return {"metrics": [], "per_sample": [], "info": {"error": msg}}


def _effect(scored_ids: list[str], unsound: dict, pass1_all, pass1_sound) -> str:
    n = len(scored_ids)
    u = sum(t in unsound for t in scored_ids)
    if not u:
        return f"All {n} scored problems passed the soundness check; eval.pass@k is over all of them."
    p = sum(unsound[t]["unpassable"] for t in scored_ids if t in unsound)
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    return (f"{u} of the {n} scored problems are unsound (reasons listed per problem); {p} of them cannot be passed "
            f"by any completion because the program does not parse, which caps eval.pass@k at {(n - p) / n:.4f}. "
            f"eval.pass@k counts every problem, as the problem file's own scoring would; eval.pass@k.sound leaves "
            f"the unsound ones out: pass@1 is {fmt(pass1_all)} over all {n} and {fmt(pass1_sound)} over the "
            f"{n - u} sound ones. Compare models on the sound subset.")


NEAR_LIMIT = 0.8  # a run that took this share of the wall-clock limit or more is "near the timeout"


def flakiness(jobs: list, runs: list[list[Execution]], wall_s: float | None) -> tuple[list[dict], dict]:
    """Metrics and details of the samples whose verdict (passed or not) changed between repeated runs of the
    same program; near-limit durations are flagged because a program that sometimes times out is the usual
    cause."""
    flaky, near = [], 0
    for j, (t, s) in enumerate(jobs):
        exs = [r[j] for r in runs]
        close = wall_s is not None and any(e.status == "timeout" or e.duration_s >= NEAR_LIMIT * wall_s for e in exs)
        near += close
        if len({e.passed for e in exs}) > 1:
            flaky.append({"task_id": t.task_id, "index": s.index, "statuses": [e.status for e in exs],
                          "durations_s": [round(e.duration_s, 3) for e in exs], "near_timeout": close})
    n = len(jobs)
    ms = [metric("eval.flaky_rate", len(flaky) / n if n else None, "ratio", False,
                 labels={"repeats": len(runs), "samples": n},
                 note="share of samples whose verdict changed between repeated runs of the same program"),
          metric("eval.near_timeout", near, "count", False, labels={"repeats": len(runs)},
                 note=f"samples with a run that timed out or took at least {NEAR_LIMIT:.0%} of the wall-clock limit")]
    return ms, {"repeats": len(runs), "flaky": flaky, "flaky_near_timeout": sum(f["near_timeout"] for f in flaky)}


def pass_at_k_metric(name: str, counts: list[tuple[int, int]], k: int, note: str) -> dict:
    """eval.pass@k with stats over tasks and stats.ci95: a seeded percentile bootstrap over tasks."""
    from ..intervals import bootstrap_mean_ci
    from .passk import pass_at_k
    from ..report import stats

    v = suite_pass_at_k(counts, k)
    m = metric(name, v, "fraction", True, note=note)
    if v is not None and counts:
        per = [pass_at_k(n, c, k) for n, c in counts]
        m["stats"] = {**stats(per), "mean": v, "ci95": bootstrap_mean_ci(per)}
    return m


def evaluate(suite: Suite, samples: SampleSet, executor: Executor, ks: list[int], *, workers: int = 2,
             check: bool = True, quality: bool = True, progress: bool = True, config: dict | None = None,
             repeat: int = 1) -> dict:
    by_task = samples.per_task()
    tasks = [t for t in suite.tasks if t.task_id in by_task]
    missing = [t.task_id for t in suite.tasks if t.task_id not in by_task]
    unsound = soundness(suite.tasks, executor, workers, progress) if check else {}

    jobs = [(t, s) for t in tasks for s in by_task[t.task_id]]
    runs = [_pool_map(lambda j: executor.run(j[0], j[1].completion, j[1].rejected), jobs, workers,
                      "running samples" + (f" ({r + 1}/{repeat})" if repeat > 1 else ""), progress)
            for r in range(repeat)]
    done = runs[0]  # scores come from the first run; the others only measure flakiness
    results: dict[str, list] = {}
    for (t, s), ex in zip(jobs, done):
        results.setdefault(t.task_id, []).append((s, ex))
    scored = [Scored(t, results[t.task_id]) for t in tasks]

    metrics, notes = [], []
    counts_all = [(s.n, s.c) for s in scored]
    counts_sound = [(s.n, s.c) for s in scored if s.task.task_id not in unsound]
    for k in ks:
        v = suite_pass_at_k(counts_all, k)
        if v is None:
            short = sum(n < k for n, _ in counts_all)
            notes.append(f"eval.pass@{k} not reported: {short} of {len(counts_all)} tasks have fewer than {k} samples")
            continue
        metrics.append(pass_at_k_metric(f"eval.pass@{k}", counts_all, k,
                                        f"over all {len(counts_all)} problems with samples; stats.ci95: "
                                        "bootstrap over tasks, seed 0"))
        if check:
            metrics.append(pass_at_k_metric(f"eval.pass@{k}.sound", counts_sound, k,
                                            f"over the {len(counts_sound)} sound problems"))
    for cat in sorted({s.task.category for s in scored}):
        cc = [(s.n, s.c) for s in scored if s.task.category == cat]
        metrics.append(metric(f"eval.pass@1.{cat}", suite_pass_at_k(cc, 1), "fraction", True,
                              labels={"category": cat, "tasks": len(cc)}))
    statuses = Counter(ex.status for s in scored for _, ex in s.results)
    durations = [ex.duration_s for s in scored for _, ex in s.results if ex.status != "rejected"]
    leftovers = sum(ex.leftover for s in scored for _, ex in s.results)
    metrics += [
        metric("eval.tasks", len(scored), "count", None),
        metric("eval.tasks_without_samples", len(missing), "count", None),
        metric("eval.samples", sum(s.n for s in scored), "count", None),
        metric("eval.unsound_problems", len(unsound) if check else None, "count", False,
               note=None if check else "not checked (--no-check)"),
        metric("eval.bad_sample_lines", sum(samples.bad.values()), "count", False),
        metric("eval.leftover_processes", leftovers, "count", False),
        *(metric(f"eval.status.{st}", statuses.get(st, 0), "count", None) for st in STATUSES),
    ]
    if durations:
        metrics.append(metric("eval.exec_time_s", None, "s", False, samples=durations))
    completions = [smp.completion for s in scored for smp, _ in s.results]
    if completions:
        metrics.append(metric("eval.no_code_rate", sum(not has_code(c) for c in completions) / len(completions),
                              "ratio", False, labels={"samples": len(completions)},
                              note="completions with no line besides blank lines and comments: valid bash "
                                   "that does nothing, which syntax and ShellCheck rates count as clean"))

    flaky = None
    if repeat > 1:
        fms, flaky = flakiness(jobs, runs, getattr(getattr(executor.sandbox, "limits", None), "wall_s", None))
        metrics += fms
    q = _quality(scored, workers, progress) if quality else None
    if q:
        metrics += q.get("metrics", [])
    per_sample_q = iter(q["per_sample"]) if q and q.get("per_sample") else None

    pass1_sound = suite_pass_at_k(counts_sound, 1) if check else None
    details = {
        "tasks": [{
            "task_id": s.task.task_id, "category": s.task.category, "n": s.n, "passed": s.c,
            "sound": s.task.task_id not in unsound,
            "samples": [{"index": smp.index, "line": smp.line, **ex.to_dict(),
                         **({"quality": next(per_sample_q, None)} if per_sample_q else {})}
                        for smp, ex in s.results],
        } for s in scored],
        "unsound": [{"task_id": tid, **v} for tid, v in unsound.items()],
        "unsound_effect": _effect([s.task.task_id for s in scored], unsound, suite_pass_at_k(counts_all, 1),
                                  pass1_sound)
        if check else "The soundness check was skipped (--no-check); unsound problems are not identified.",
        "tasks_without_samples": missing,
        "load_issues": suite.load_issues,
        "bad_samples": {"counts": dict(samples.bad), "examples": samples.bad_examples},
        "notes": notes,
        **({"flakiness": flaky} if flaky else {}),
        **({"quality_info": q["info"]} if q and "info" in q else {}),
    }
    partial = (unsound or samples.bad or missing or suite.load_issues or statuses.get("error") or leftovers
               or (q and "error" in q.get("info", {})))
    cfg = {"tasks": suite.describe(), "samples": samples.source, "k": ks, "workers": workers,
           "soundness_check": check, "isolation": executor.sandbox.isolation,
           "n_per_task": {"min": min((s.n for s in scored), default=0), "max": max((s.n for s in scored), default=0)},
           **(config or {})}
    return make_report("eval", cfg, metrics, "partial" if partial else "ok", details=details)
