"""`harness compare BASE.json NEW.json`: exit 1 when NEW regressed against BASE, 0 otherwise, 2 on bad input
(including two reports that share no comparable environment and configuration)."""
from __future__ import annotations

from ..numbers import fmt

import json

from ..errors import CheckFailed, UsageError


def add_arguments(p):
    p.add_argument("base", metavar="BASE.json", help="the reference report")
    p.add_argument("new", metavar="NEW.json", help="the report to check")
    p.add_argument("--threshold", type=float, default=0.05,
                   help="relative change that counts as a regression when significant (default 0.05 = 5%%)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of the Mann-Whitney U test (default 0.05)")
    p.add_argument("--metric", action="append", default=[], metavar="NAME",
                   help="compare only this metric (fnmatch pattern, e.g. 'train.*'); repeatable")
    p.add_argument("--ignore", action="append", default=[], metavar="KEY",
                   help="an environment or config key to leave out of the match (e.g. config.steps, cpu.model); repeatable")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON instead of a table")
    p.add_argument("--out", metavar="REPORT.json", help="also write a 'compare' report")


def _table(cmp, base_path, new_path):
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    con = Console(width=160)
    t = Table(title=f"{base_path} -> {new_path} (threshold {cmp.threshold:.0%}, alpha {cmp.alpha})")
    for col in ("metric", "unit", "base", "new", "change", "p", "95% CI new/base", "n", "status", "note"):
        t.add_column(col, justify="right" if col in ("base", "new", "change", "p", "n") else "left",
                     overflow="fold", no_wrap=col in ("change", "p", "status"))
    style = {"regression": "bold red", "improvement": "green", "noise": "yellow"}
    for r in cmp.rows:
        ci = f"[{r.ci[0]:.3f}, {r.ci[1]:.3f}]" if r.ci else "-"
        t.add_row(escape(r.key), escape(r.unit), fmt(r.base), fmt(r.new), "-" if r.change is None else f"{r.change:+.1%}",
                  "-" if r.p_value is None else f"{r.p_value:.3g}", ci, f"{r.n_base}/{r.n_new}",
                  f"[{style[r.status]}]{r.status}[/]" if r.status in style else r.status, escape(r.note))
    con.print(t)
    for d in cmp.env_info:
        con.print(escape(f"note: environment also differs in {d} (compared anyway)"))


def run(args) -> int:
    from ..perf.compare import compare_reports
    from ..report import load_report, make_report, metric, write_report

    if not 0 <= args.threshold < 10:
        raise UsageError(f"--threshold {args.threshold} is out of range; give a fraction such as 0.05 for 5%")
    if not 0 < args.alpha < 1:
        raise UsageError(f"--alpha {args.alpha} must be between 0 and 1, e.g. 0.05")
    if args.out:
        from ..outputs import check_output

        check_output(args.out, inputs=[("BASE", args.base), ("NEW", args.new)], replaces="report")
    base, new = load_report(args.base), load_report(args.new)
    cmp = compare_reports(base, new, threshold=args.threshold, alpha=args.alpha, metrics=args.metric, ignore=args.ignore)
    if args.json:
        print(json.dumps({"base": args.base, "new": args.new, **cmp.to_dict()}, indent=2, default=str))
    if not cmp.comparable:
        raise UsageError(f"{args.base} and {args.new} are not comparable: {cmp.mismatch_message()}; compare reports "
                         "from the same machine and configuration, or leave a key out with --ignore KEY")
    if not any(r.status != "not compared" for r in cmp.rows):
        raise UsageError(f"{args.base} and {args.new} share no metric to compare"
                         + (f" matching {args.metric}" if args.metric else "") + "; check the report kinds and --metric")
    if not args.json:
        _table(cmp, args.base, args.new)
    if args.out:
        counts = {s: sum(r.status == s for r in cmp.rows) for s in ("regression", "improvement", "unchanged", "noise")}
        rep = make_report("compare", {"base": args.base, "new": args.new, "threshold": args.threshold, "alpha": args.alpha,
                                      "metrics": args.metric, "ignore": args.ignore},
                          [metric(f"compare.{k}", v, "metrics", None) for k, v in counts.items()],
                          "failed" if cmp.regressions else "ok",
                          details={"base_created_at": base.get("created_at"), "new_created_at": new.get("created_at"),
                                   **cmp.to_dict()})
        write_report(json.loads(json.dumps(rep, default=list)), args.out)
    if cmp.regressions:
        raise CheckFailed(f"{len(cmp.regressions)} metric(s) regressed: " + ", ".join(
            f"{r.key} {r.change:+.1%}" + (f" (p={r.p_value:.3g})" if r.p_value is not None else "") for r in cmp.regressions))
    return 0
