"""`harness claims`: audit every numeric claim of the seed documents and print a verdict with evidence for
each. Exit status 1 when a claim gets a verdict named by --fail-on (default: refuted or impossible, the
verdicts that say a claim is false; CONTRACT.md: 1 = a refuted claim); `--fail-on none` always exits 0."""
from __future__ import annotations

import json

from ..errors import CheckFailed, UsageError


def add_arguments(p):
    p.add_argument("--claims", metavar="FILE", help="claims file (default fixtures/claims/seed-claims.json)")
    p.add_argument("--reports", nargs="*", metavar="REPORT.json",
                   help="reports to check measurable claims against (default: every valid JSON report under results/); "
                        "give the flag with no files to use none")
    p.add_argument("--tolerance", type=float, default=None,
                   help="relative tolerance for a measurement to confirm a claim (default 0.10)")
    p.add_argument("--out", metavar="REPORT.json", help="write the claims report here")
    p.add_argument("--json", action="store_true", help="print the audited claims as JSON instead of tables")
    p.add_argument("--summary", action="store_true", help="print only the verdict counts")
    p.add_argument("--verdict", action="append", default=[], metavar="VERDICT",
                   help="show only claims with this verdict (repeatable)")
    p.add_argument("--fail-on", default="refuted,impossible", metavar="VERDICTS",
                   help="comma-separated verdicts that make the exit status 1 (default refuted,impossible; 'none' never)")


def _verdicts(text: str, flag: str) -> list[str]:
    from ..claims.audit import VERDICTS

    vs = [v.strip() for v in text.split(",") if v.strip()]
    if vs == ["none"]:
        return []
    bad = [v for v in vs if v not in VERDICTS]
    if bad:
        raise UsageError(f"{flag} {text!r}: unknown verdict {', '.join(bad)}; use {', '.join(VERDICTS)} or 'none'")
    return vs


STYLE = {"impossible": "bold red", "refuted": "red", "implausible": "yellow", "confirmed": "green", "unverified": "dim"}


def _tables(items, counts):
    from rich.console import Console
    from rich.table import Table

    from rich.markup import escape

    from ..claims.audit import fmt

    con = Console(width=200)
    if items:
        t = Table(title="Seed claims: verdict and decisive evidence (full evidence in the report)", show_lines=False)
        for col, kw in (("verdict", {"no_wrap": True}), ("id", {"no_wrap": True}), ("claim", {"max_width": 34}),
                        ("hardware", {"max_width": 18}), ("evidence", {"ratio": 1})):
            t.add_column(col, **kw)
        for i in items:
            val = fmt(i["value"]) if isinstance(i["value"], (int, float)) else str(i["value"])
            if "value_max" in i:
                val += f"-{fmt(i['value_max'])}"
            first = i["findings"][0]["evidence"] if i["findings"] else ""
            t.add_row(f"[{STYLE[i['verdict']]}]{i['verdict']}[/]", escape(i["id"]), escape(f"{i['metric']} = {val} {i['unit']}"),
                      escape(i["hardware"]), escape(first))
        con.print(t)
    s = Table(title="Verdicts")
    s.add_column("verdict")
    s.add_column("claims", justify="right")
    for v, n in counts.items():
        s.add_row(f"[{STYLE[v]}]{v}[/]", str(n))
    s.add_row("total", str(sum(counts.values())))
    con.print(s)


def run(args) -> int:
    from ..claims.audit import DEFAULT_TOLERANCE, audit, claims_report, load_claims, load_reports, verdict_counts
    from ..report import write_report

    fail_on = _verdicts(args.fail_on, "--fail-on")
    show = _verdicts(",".join(args.verdict), "--verdict") if args.verdict else None
    tol = DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
    if not 0 <= tol < 1:
        raise UsageError(f"--tolerance {tol} must be a fraction between 0 and 1, e.g. 0.1 for 10%")
    if args.out:
        from ..outputs import check_output

        check_output(args.out, inputs=[("--claims", args.claims), *(("--reports", r) for r in args.reports or [])],
                     replaces="report")
    if args.claims:
        from ..outputs import check_input

        check_input(args.claims, "--claims", what="claims file",
                    hint="pass a claims JSON file like fixtures/claims/seed-claims.json")
    doc = load_claims(args.claims)
    reports = [] if args.reports == [] else load_reports(args.reports)
    items = audit(doc, reports, tol)
    counts = verdict_counts(items)
    if args.out:
        write_report(claims_report(items, claims_file=doc["_path"], report_paths=[p for p, _ in reports], tolerance=tol),
                     args.out)
    shown = [i for i in items if show is None or i["verdict"] in show]
    if args.json:
        print(json.dumps(shown, indent=2, ensure_ascii=False))
    else:
        _tables([] if args.summary else shown, counts)
    failing = [i for i in items if i["verdict"] in fail_on]
    if failing:
        raise CheckFailed(f"{len(failing)} of {len(items)} claims are " + " or ".join(fail_on)
                          + (f" (report: {args.out})" if args.out else "") + "; use --fail-on none to exit 0 anyway")
    return 0
