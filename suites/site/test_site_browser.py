"""The results site in a real browser: every page generated from the committed reports (results/) opens
from disk in headless Chromium with no console error, uncaught exception, blocked or failed load, shows
the key values of its reports, and is saved as a screenshot (under the test's tmp dir, and under
$HARNESS_SITE_SCREENSHOTS when set). A site built from a report full of markup shows that markup as text
and runs none of it; control pages prove the checker sees each kind of error it claims to catch.

Needs Debian's Chromium (`apt-get install -y chromium`); skipped, with that command, when it is missing."""
import os
from pathlib import Path

import pytest

from harness.site.publish import load_all
from harness.report import make_report, metric, write_report
from harness.site.build import build_site, config_label, entries_of
from harness.site.browser import INSTALL_HINT, Chromium, find_chromium
from harness.site.html import CSP, fmt

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = '<script>alert("pwned")</script><img src=x onerror=alert(1)><iframe src="https://example.invalid/">'

pytestmark = pytest.mark.skipif(find_chromium() is None,
                                reason=f"Chromium is not installed; install it with: {INSTALL_HINT}")


def _hostile_report(folder: Path) -> Path:
    env = {"os": {"system": "Linux"}, "cpu": {"model": f"CPU {HOSTILE}", "cores": 1}, "python": "3.11",
           "mlx": {"version": "0", "backend": "cpu", "device": "cpu"}, "blas": {"name": "openblas"}}
    samples = [{"index": 0, "status": "failed", "exit_code": 1, "duration_s": 0.1, "stdout": HOSTILE,
                "stderr": HOSTILE}]
    r = make_report("eval", {"samples": HOSTILE, "k": [1]},
                    [metric("eval.pass@1", 0.0, "fraction", True, note=HOSTILE),
                     metric(f"eval.pass@1.{HOSTILE}", 0.0, "fraction", True, labels={"category": HOSTILE})],
                    environment=env,
                    details={"tasks": [{"task_id": HOSTILE, "category": HOSTILE, "n": 1, "passed": 0,
                                        "samples": samples}], "notes": [HOSTILE]})
    return write_report(r, folder / "hostile.json")


def _render(browser: Chromium, site: Path, shots: list[Path], prefix: str = "") -> dict:
    out = {}
    for page in sorted(site.rglob("*.html")):
        rel = str(page.relative_to(site))
        r = browser.render(page.as_uri())
        name = prefix + rel.replace("/", "__").removesuffix(".html") + ".png"
        for d in shots:
            d.mkdir(parents=True, exist_ok=True)
            (d / name).write_bytes(r.screenshot)
        out[rel] = r
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    reports = load_all([ROOT / "results"])
    if not reports:
        pytest.skip("no committed reports under results/")
    site = tmp_path_factory.mktemp("site")
    build_site(reports, site)
    bad = tmp_path_factory.mktemp("hostile")
    hostile_site = tmp_path_factory.mktemp("hostile-site")
    build_site(load_all([_hostile_report(bad)]), hostile_site)
    shots = [tmp_path_factory.mktemp("screenshots")]
    if os.environ.get("HARNESS_SITE_SCREENSHOTS"):
        shots.append(Path(os.environ["HARNESS_SITE_SCREENSHOTS"]))
    with Chromium() as b:
        pages = _render(b, site, shots)
        hostile = _render(b, hostile_site, shots, prefix="hostile-")
    return reports, pages, hostile, shots[0]


def test_every_page_renders_without_errors(rendered):
    reports, pages, hostile, shots = rendered
    assert {"index.html", "bench.html", "train.html", "eval.html", "claims.html"} <= set(pages)
    for rel, r in {**pages, **{f"hostile/{k}": v for k, v in hostile.items()}}.items():
        assert r.errors == [], (rel, r.errors)
        assert r.scripts == 0, rel
        assert r.title.endswith("harness results") and "Hardware and versions" in r.text, rel
        assert r.screenshot[:8] == b"\x89PNG\r\n\x1a\n" and len(r.screenshot) > 5000, rel
    assert len(list(shots.glob("*.png"))) == len(pages) + len(hostile)


def _superseded(e, m, entries) -> bool:
    """The overview shows each configuration's latest value: is (e, m) replaced there by a newer report?"""
    label = config_label(e, m)
    return any((o.created, o.name) > (e.created, e.name) and o.hardware == e.hardware
               and any(x.get("name") == m["name"] and config_label(o, x) == label for x in o.report["metrics"])
               for o in entries if o.kind == e.kind)


def test_key_values_of_the_reports_appear(rendered):
    reports, pages, _, _ = rendered
    entries = entries_of(reports)
    for e in entries:
        r = e.report
        assert e.hardware in pages["index.html"].text
        vals = {m["name"]: m for m in r["metrics"]}
        if e.kind == "eval":
            page = pages[f"eval/{e.name}.html"].text
            for name in ("eval.pass@1", "eval.pass@10", "eval.syntax.bash_n", "eval.shellcheck_clean"):
                if name in vals and vals[name]["value"] is not None:
                    assert fmt(vals[name]["value"], vals[name]["unit"]) in page, (e.name, name)
            for m in r["metrics"]:
                cat = (m.get("labels") or {}).get("category")
                if cat and m["value"] is not None:  # the per-category table
                    assert f"{cat}\t{m['labels'].get('tasks', '')}\t{fmt(m['value'], m['unit'])}" in page, m["name"]
            if "eval.pass@1" not in vals:  # sampled with --generate-only: nothing scored, the page says so
                assert r["config"].get("scored") is False and "not scored" in page
            elif not _superseded(e, vals["eval.pass@1"], entries):
                assert fmt(vals["eval.pass@1"]["value"], "fraction") in pages["index.html"].text
        if e.kind == "bench":
            for m in r["metrics"]:
                if m["name"] == "train.tokens_per_s" and m["value"] is not None:
                    assert fmt(m["value"], m["unit"]) in pages["bench/train.tokens_per_s.html"].text
                    if not _superseded(e, m, entries):
                        assert fmt(m["value"], m["unit"]) in pages["index.html"].text
        if e.kind == "train" and vals.get("train.loss", {}).get("value") is not None:
            assert fmt(vals["train.loss"]["value"], "nats/token") in pages["train.html"].text
        if e.kind == "claims":
            counts: dict = {}
            for c in r["claims"]:
                counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
            for v, n in counts.items():
                assert f"{v} {n}" in pages["claims.html"].text


def test_hostile_report_is_shown_as_text(rendered):
    _, _, hostile, _ = rendered
    [name] = [k for k in hostile if k.startswith("eval/")]
    assert hostile[name].text.count(HOSTILE) >= 2  # note, notes list; closed <details> hide the rest
    assert HOSTILE in hostile["index.html"].text  # in the hardware name


def test_checker_reports_each_kind_of_error(tmp_path):
    """Negative controls: without these the clean results above could mean a blind checker."""
    pages = {
        "console.html": "<script>console.error('boom'); throw new Error('thrown')</script>",
        "remote.html": "<img src='https://example.invalid/x.png'>",
        "dialog.html": "<script>alert('pwned')</script>",
        "csp.html": f'<meta http-equiv="Content-Security-Policy" content="{CSP}"><script>1</script>',
    }
    for name, body in pages.items():
        (tmp_path / name).write_text(f"<!doctype html><html><head><title>t</title></head><body>{body}</body></html>")
    with Chromium() as b:
        got = {n: " | ".join(b.render((tmp_path / n).as_uri(), screenshot=False).errors) for n in pages}
        got["missing.html"] = " | ".join(b.render((tmp_path / "missing.html").as_uri(), screenshot=False).errors)
    assert "console.error: boom" in got["console.html"] and "Error: thrown" in got["console.html"]
    assert "https://example.invalid/x.png" in got["remote.html"]
    assert "dialog (alert): pwned" in got["dialog.html"]
    assert "Content Security Policy" in got["csp.html"]
    assert "ERR_FILE_NOT_FOUND" in got["missing.html"]
