"""`harness scaling REPORT... [--min-efficiency F] [--loss-rtol F]`: data-parallel scaling efficiency and loss
agreement from train reports of the same run on 1 and N processes (same global batch). Exit 1 when a gate
fails, 2 on bad input. The rules (grouping, interval, loss agreement) are in harness/perf/scaling.py."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import CheckFailed, UsageError


def add_arguments(p):
    p.add_argument("reports", nargs="+", metavar="REPORT",
                   help="train reports (or folders searched for them): one world_size=1 run and one or more "
                        "N-process runs of the same configuration")
    p.add_argument("--min-efficiency", type=float, default=None, metavar="F",
                   help="exit 1 when any N's scaling efficiency (speedup / N) is below F, e.g. 0.8")
    p.add_argument("--loss-rtol", type=float, default=0.01, metavar="F",
                   help="exit 1 when a training or validation loss differs from the 1-process run's by more than "
                        "F relative at any common step (default 0.01)")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    p.add_argument("--out", metavar="REPORT.json", help="also write a 'scaling' report")


def collect(paths) -> list[tuple[Path, dict]]:
    """Train reports among the paths: a file named explicitly must be one; in folders other kinds are passed
    over (unreadable JSON is skipped with a note, as publish does)."""
    from ..report import find_reports

    out = []
    for p in paths:
        if not Path(p).exists():
            raise UsageError(f"{p} does not exist; pass train report files (RUN/report.json) or folders of them")
        for q, r in find_reports([p], who="harness scaling"):
            if r["kind"] == "train":
                out.append((q, r))
            elif Path(p).is_file():
                raise UsageError(f"{q} is a {r['kind']!r} report, not a train report; pass the reports that "
                                 "`harness train` wrote (RUN/report.json) on 1 and on N processes")
    if not out:
        raise UsageError(f"no train report in {', '.join(map(str, paths))}; pass the reports that `harness train` "
                         "wrote (RUN/report.json) on 1 and on N processes")
    return out


def _ci(c, digits=3):
    return f" [{c[0]:.{digits}f}, {c[1]:.{digits}f}]" if c else ""


def _diff(a):
    if a is None or a.common_steps == 0:
        return "-"
    if a.max_rel_diff is None or a.max_rel_diff != a.max_rel_diff or a.max_rel_diff == float("inf"):
        return f"not finite (step {a.at_step})"
    return f"{a.max_rel_diff:.2e} @{a.at_step} (n={a.common_steps})"


def _table(groups, args):
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ..perf.scaling import point_failures

    con = Console(width=160)
    gates = [f"loss rel diff <= {args.loss_rtol}"] + (
        [f"efficiency >= {args.min_efficiency}"] if args.min_efficiency is not None else [])
    t = Table(title=f"Data-parallel scaling (same global batch; efficiency = speedup / N); gates: {', '.join(gates)}")
    for col in ("configuration", "N", "tokens/s", "speedup [95% CI]", "efficiency [95% CI]",
                "max rel diff: loss", "val loss", "status", "report"):
        t.add_column(col, justify="right" if col in ("N", "tokens/s") else "left", overflow="fold",
                     no_wrap=col not in ("configuration", "report"))
    for g in groups:
        for p in g.points:
            bad = point_failures(g, p, args.min_efficiency, args.loss_rtol)
            status = ("[bold red]FAIL[/]" if bad else "[green]ok[/]") if p.world_size > 1 else "baseline"
            if p.status != "ok":
                status += escape(f" (report {p.status})")
            eff = ("-" if p.efficiency is None else f"{p.efficiency:.1%}" + (
                f" [{100 * p.efficiency_ci[0]:.1f}, {100 * p.efficiency_ci[1]:.1f}]" if p.efficiency_ci else ""))
            t.add_row(escape(f"{g.preset} {g.global_batch}x{g.seq_len} {g.dtype}"), str(p.world_size),
                      f"{p.tokens_per_s:,.0f}",
                      "1 (baseline)" if p.speedup is None else f"{p.speedup:.3f}{_ci(p.speedup_ci)}", eff,
                      "-" if p.loss is None else _diff(p.loss), "-" if p.val_loss is None else _diff(p.val_loss),
                      status, escape(p.path))
    con.print(t)
    for g in groups:
        con.print(escape(f"{g.preset} {g.global_batch}x{g.seq_len} {g.dtype}: measured on {g.hardware}"))
    con.print(escape("tokens/s: median per optimizer step, all processes; intervals: percentile bootstrap of the "
                     "ratio of medians over the per-step samples (2000 resamples, seed 0); max rel diff: largest "
                     "|loss_N - loss_1| / |loss_1| @ its step, over n common steps"))
    if args.out:
        env = max((p for g in groups for p in g.points), key=lambda p: p.world_size)
        con.print(escape(f"{args.out}: environment taken from {env.path} (the run with the most processes)"))


def run(args) -> int:
    from ..report import write_report
    from ..perf.scaling import analyse, failures, make_scaling_report

    if args.min_efficiency is not None and not 0 <= args.min_efficiency <= 2:
        raise UsageError(f"--min-efficiency {args.min_efficiency} is out of range; give a fraction such as 0.8 for 80%")
    if not 0 <= args.loss_rtol < 10:
        raise UsageError(f"--loss-rtol {args.loss_rtol} is out of range; give a relative difference such as 0.01")
    if args.out:
        from ..outputs import check_output

        check_output(args.out, inputs=[("REPORT", r) for r in args.reports], replaces="report")
    groups = analyse(collect(args.reports))
    fails = failures(groups, args.min_efficiency, args.loss_rtol)
    if args.json:
        print(json.dumps({"groups": [g.to_dict() for g in groups], "failures": fails,
                          "min_efficiency": args.min_efficiency, "loss_rtol": args.loss_rtol}, indent=2, default=str))
    else:
        _table(groups, args)
    if args.out:
        write_report(make_scaling_report(groups, args.min_efficiency, args.loss_rtol), args.out)
    if fails:
        raise CheckFailed("; ".join(fails))
    return 0
