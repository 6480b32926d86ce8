"""`harness mutate`: mutation testing of a task suite's tests (harness/eval/mutate.py): every mutant of each
canonical solution run against the task's tests in the sandbox; --write-scores and --check-scores keep the
scores shipped with the suite (harness/eval/mutation_scores.py).

    harness mutate [TASKS_DIR] [--task ID] [--cap N] [--json OUT] [--write-scores | --check-scores]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def add_arguments(p):
    from ..eval.mutation_scores import SCORES, THRESHOLD
    from ..eval.tasks import DEFAULT_TASKS

    p.add_argument("tasks", nargs="?", default=str(DEFAULT_TASKS), help="task suite directory (default: %(default)s)")
    p.add_argument("--task", action="append", help="only this task id (repeatable)")
    p.add_argument("--cap", type=int, help="at most this many mutants per task, spread over the operators "
                                           "(default: all)")
    p.add_argument("--workers", type=int, default=2, help="parallel sandboxed runs (default 2)")
    p.add_argument("--timeout", type=float, default=5.0, help="wall clock per mutant run in seconds (default 5)")
    p.add_argument("--json", help="write the results (suite name, version, content hash, per-task scores) here")
    p.add_argument("--show", action="store_true", help="list the chosen mutants (with their keys) without running them")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--write-scores", action="store_true",
                   help=f"write the scores of the tasks run into TASKS/{SCORES} (others keep their entry)")
    g.add_argument("--check-scores", action="store_true",
                   help=f"exit 1 unless every task run scores what TASKS/{SCORES} ships, and at least {THRESHOLD}")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="run mutants without bubblewrap (mutants of file-deleting scripts can then do real damage)")


def run(args) -> int:
    from ..errors import UsageError
    from ..eval.mutate import TaskMutation, generate, run_suite, select
    from ..eval.mutation_scores import (EQUIVALENTS, SCORES, THRESHOLD, check_scores, load_equivalents, load_scores,
                                        score_file, summary)
    from ..eval.tasks import load_suite
    from ..report import atomic_write_text

    if (args.cap is not None and args.cap < 1) or args.workers < 1 or not args.timeout > 0:
        raise UsageError("--cap and --workers must be at least 1 and --timeout positive")
    if args.cap is not None and (args.write_scores or args.check_scores):
        raise UsageError("--write-scores and --check-scores need every mutant: leave out --cap")
    suite = load_suite(args.tasks)
    if suite.format != "own":
        raise UsageError(f"{args.tasks} is not a task suite directory with canonical solutions")
    try:
        equivalents = load_equivalents(args.tasks)
    except (ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{Path(args.tasks) / EQUIVALENTS} is malformed ({e}); fix the file") from None
    if args.task:
        unknown = set(args.task) - set(suite.by_id())
        if unknown:
            raise UsageError(f"unknown task id(s): {', '.join(sorted(unknown))}")
        suite.tasks = [t for t in suite.tasks if t.task_id in set(args.task)]
    if args.show:
        for t in suite.tasks:
            eq = equivalents.get(t.task_id, {})
            for mu in select(generate(t.canonical or ""), args.cap):
                print(f"{t.task_id}\t{mu.operator}\tline {mu.line}\t{mu.key}"
                      + ("\t(equivalent)" if mu.key in eq else ""))
        return 0
    from ..eval.execute import Executor
    from ..sandbox.sandbox import Limits, Sandbox

    with Sandbox(limits=Limits(wall_s=args.timeout), unsafe=args.unsafe_no_sandbox,
                 slots=args.workers) as sandbox:
        def show(r: TaskMutation):
            print(f"{r.killed}/{r.run - r.equivalent}\t{r.score:.3f}\t{r.task_id}"
                  + "".join(f"\n\tsurvived: {s}" for s in r.survivors), flush=True)

        results = run_suite(suite, Executor(sandbox), args.cap, args.workers, progress=show,
                            equivalents=equivalents)
        out = summary(suite, results, sandbox.isolation, args.cap)
    score = out["mutation_score"]
    print(f"killed {out['mutants_killed']}/{out['mutants_run'] - out['mutants_equivalent']} non-equivalent mutants "
          f"({'-' if score is None else f'{score:.1%}'}; {out['mutants_equivalent']} recorded equivalent); tasks "
          f"below {THRESHOLD:.0%}: {len(out['tasks_below_threshold'])}; suite {suite.name} {suite.version} "
          f"{suite.content_hash}", file=sys.stderr)
    if args.json:
        atomic_write_text(args.json, json.dumps(out, indent=1) + "\n")
    if args.write_scores:
        full_suite = load_suite(args.tasks)
        scores = score_file(full_suite, results, load_scores(args.tasks))
        atomic_write_text(Path(args.tasks) / SCORES, json.dumps(scores, indent=1) + "\n")
        print(f"wrote {Path(args.tasks) / SCORES}: {len(scores['tasks'])} of {len(full_suite.tasks)} tasks",
              file=sys.stderr)
    problems = check_scores(args.tasks, results, load_scores(args.tasks), compare=args.check_scores)
    for x in problems:
        print(f"  {x}", file=sys.stderr)
    return 1 if problems else 0
