"""`harness publish`: reports -> markdown tables (RESULTS.md) and plots, and with --site a static HTML site."""
from __future__ import annotations

from pathlib import Path


def add_arguments(p):
    p.add_argument("reports", nargs="*", default=["results"], help="report files or folders (default: results/)")
    p.add_argument("--out", default="results/published", help="output folder for RESULTS.md and plots")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--site", metavar="DIR", default=None,
                   help="also write a static HTML site (opens from disk, no scripts) into DIR, e.g. site/")


def run(args) -> int:
    from ..site.publish import load_all, markdown, plots
    from ..report import atomic_write_text

    from ..outputs import check_output

    check_output(args.out, kind="dir")  # a folder of reports may also take RESULTS.md (the demo does so)
    if args.site:
        from ..site.build import check_target

        check_output(args.site, "--site", kind="dir")
        check_target(args.site)
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
    if args.site:
        from ..site.build import build_site

        pages = build_site(reports, args.site)
        print(pages[0])
    return 0
