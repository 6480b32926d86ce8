"""`harness publish`: reports -> markdown tables (RESULTS.md) and plots."""
from __future__ import annotations

from pathlib import Path


def add_arguments(p):
    p.add_argument("reports", nargs="*", default=["results"], help="report files or folders (default: results/)")
    p.add_argument("--out", default="results/published", help="output folder for RESULTS.md and plots")
    p.add_argument("--no-plots", action="store_true")


def run(args) -> int:
    from ..publish import load_all, markdown, plots
    from ..report import atomic_write_text

    reports = load_all(args.reports)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    md = markdown(reports)
    written = [] if args.no_plots else plots(reports, out)
    if written:
        md += "\n" + "\n".join(f"![{p.stem}]({p.name})" for p in written) + "\n"
    path = atomic_write_text(out / "RESULTS.md", md)
    print(path)
    for p in written:
        print(p)
    return 0
