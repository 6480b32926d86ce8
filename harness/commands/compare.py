"""`harness compare BASE.json NEW.json`: a verdict per metric (regression, improvement, unchanged, inconclusive);
exit 1 when a regression is shown, 0 otherwise (inconclusive too, unless --fail-on-inconclusive), 2 on bad input
(including two reports that share no comparable environment and configuration, or two eval reports over
different problems)."""
from __future__ import annotations

import json

from ..errors import CheckFailed, UsageError
from ..numbers import fmt

PAIRED = ("mcnemar-exact", "paired-bootstrap")


def add_arguments(p):
    p.add_argument("base", metavar="BASE.json", help="the reference report")
    p.add_argument("new", metavar="NEW.json", help="the report to check")
    p.add_argument("--threshold", type=float, default=0.05,
                   help="relative change that counts as a regression when significant (default 0.05 = 5%%)")
    p.add_argument("--alpha", type=float, default=None,
                   help="significance level: intervals are at 1 - alpha and a regression needs the whole interval on "
                        "the bad side of no change (default 0.01 for timings, as asv's 0.002 is for its many "
                        "benchmarks; 0.05 for the paired pass@k test of two evaluations)")
    p.add_argument("--fail-on-inconclusive", action="store_true",
                   help="exit 1 also when a metric is inconclusive (too noisy to decide; see the row's note)")
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
    level = f"{1 - cmp.alpha:.0%}"
    ea = (f"; pass@k paired at alpha {cmp.eval_alpha}: {1 - cmp.eval_alpha:.0%} intervals"
          if cmp.eval_alpha is not None else "")
    t = Table(title=f"{base_path} -> {new_path} (threshold {cmp.threshold:.0%}, alpha {cmp.alpha}: {level} intervals{ea})")
    ci_col = "CI" if cmp.eval_alpha is not None else f"{level} CI"  # two levels: the title gives both
    for col in ("metric", "unit", "base", "new", "change", "p", ci_col, "n", "method", "verdict", "note"):
        t.add_column(col, justify="right" if col in ("base", "new", "change", "p", "n") else "left",
                     overflow="fold", no_wrap=col in ("change", "p", "verdict"))
    style = {"regression": "bold red", "improvement": "green", "inconclusive": "yellow"}
    for r in cmp.rows:
        paired = r.method in PAIRED  # change and interval are differences of pass@k, not ratios
        ci = ("-" if not r.ci else f"[{r.ci[0]:+.3f}, {r.ci[1]:+.3f}]" if paired
              else f"[{r.ci[0]:.3f}, {r.ci[1]:.3f}] x")
        change = "-" if r.change is None else f"{r.change:+.3f}" if paired else f"{r.change:+.1%}"
        t.add_row(escape(r.key), escape(r.unit), fmt(r.base), fmt(r.new), change,
                  "-" if r.p_value is None else f"{r.p_value:.3g}", ci, f"{r.n_base}/{r.n_new}", r.method,
                  f"[{style[r.status]}]{r.status}[/]" if r.status in style else r.status, escape(r.note))
    con.print(t)
    for n in cmp.notes:
        con.print(escape(f"note: {n}"))
    for d in cmp.env_info:
        con.print(escape(f"note: environment also differs in {d} (compared anyway)"))


def run(args) -> int:
    from ..perf.compare import VERDICTS, compare_reports
    from ..report import load_report, make_report, metric, write_report

    if not 0 <= args.threshold < 10:
        raise UsageError(f"--threshold {args.threshold} is out of range; give a fraction such as 0.05 for 5%")
    if args.alpha is not None and not 0 < args.alpha < 1:
        raise UsageError(f"--alpha {args.alpha} must be between 0 and 1, e.g. 0.05")
    if args.out:
        from ..outputs import check_output

        check_output(args.out, inputs=[("BASE", args.base), ("NEW", args.new)], replaces="report")
    base, new = load_report(args.base), load_report(args.new)
    from ..perf.compare_eval import ProblemSetMismatch

    try:
        cmp = compare_reports(base, new, threshold=args.threshold, alpha=args.alpha, metrics=args.metric,
                              ignore=args.ignore, names=(args.base, args.new))
    except ProblemSetMismatch as e:
        raise UsageError(str(e)) from None
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
        counts = {s: sum(r.status == s for r in cmp.rows) for s in VERDICTS}
        rep = make_report("compare", {"base": args.base, "new": args.new, "threshold": args.threshold, "alpha": cmp.alpha,
                                      "metrics": args.metric, "ignore": args.ignore},
                          [metric(f"compare.{k}", v, "metrics", None) for k, v in counts.items()],
                          "failed" if cmp.regressions or (args.fail_on_inconclusive and cmp.inconclusive) else "ok",
                          details={"base_created_at": base.get("created_at"), "new_created_at": new.get("created_at"),
                                   **cmp.to_dict()})
        write_report(json.loads(json.dumps(rep, default=list)), args.out)
    if cmp.regressions:
        raise CheckFailed(f"{len(cmp.regressions)} metric(s) regressed: " + ", ".join(
            f"{r.key} {r.change:+.3f}" if r.method in PAIRED else f"{r.key} {r.change:+.1%}"
            + (f" (p={r.p_value:.3g})" if r.p_value is not None else "") for r in cmp.regressions))
    if args.fail_on_inconclusive and cmp.inconclusive:
        raise CheckFailed(f"{len(cmp.inconclusive)} metric(s) inconclusive (--fail-on-inconclusive): "
                          + ", ".join(f"{r.key} ({r.note})" for r in cmp.inconclusive))
    return 0
