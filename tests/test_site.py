"""The static results site (harness/site*.py): pages from synthetic and committed reports, links that
resolve, hostile report strings shown as text and never as markup, and every number on a page equal to
the report value it came from (checked through each cell's data-value and its shown text)."""
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.cli import main
from harness.errors import UsageError
from harness.site.publish import load_all
from harness.report import make_report, metric, write_report
from harness.site.build import build_site, entries_of
from harness.site.claims_page import claims_page
from harness.site.eval_page import categories
from harness.site.html import fmt
from harness.site.svg import nice_ticks

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = '<script>alert("pwned")</script><img src=x onerror=alert(1)>"\'&amp;'
ENV = {"os": {"system": "Linux", "release": "6.1", "platform": "Linux-test"},
       "cpu": {"model": "Test CPU", "cores": 2, "arch": "x86_64"}, "ram_bytes": 8 * 2**30, "gpu": None,
       "python": "3.11.7", "mlx": {"version": "0.32.4", "backend": "cpu", "device": "Device(cpu, 0)"},
       "blas": {"name": "openblas"}, "packages": {"mlx": "0.32.4", "torch": "2.13.0"}}
GPU_ENV = {**ENV, "gpu": [{"name": "NVIDIA H200", "memory_bytes": 150 * 2**30, "driver": "580.1"}],
           "mlx": {"version": "0.32.4", "backend": "cuda", "device": "Device(gpu, 0)"}}
HOSTILE_ENV = {**ENV, "cpu": {"model": f"CPU {HOSTILE}", "cores": 2}}


def _report(kind, config, metrics, env, commit, created, **kw):
    r = make_report(kind, config, metrics, environment=json.loads(json.dumps(env)), **kw)
    r["git"] = {"commit": commit, "dirty": False}
    r["created_at"] = created
    return r


def _bench(commit, created, scale, env=ENV):
    ms = []
    for fw, base in (("mlx", 1000.0), ("torch", 700.0)):
        lab = {"preset": "small", "batch": 4, "seq": 128, "dtype": "float32", "grad_checkpoint": "off", "framework": fw}
        ms += [metric("train.tokens_per_s", None, "tokens/s", True, labels=lab,
                      samples=[base * scale * f for f in (0.97, 1.0, 1.01, 1.03, 0.99)]),
               metric("train.peak_memory_bytes", 3.5 * 2**30 * scale, "bytes", False, labels=lab),
               metric("train.mfu", 0.0123 * scale, "fraction", True, labels=lab)]
    return _report("bench", {"preset": "small"}, ms, env, commit, created)


def _eval(env=HOSTILE_ENV):
    tasks = []
    for i, (cat, passed) in enumerate((("strings", 2), ("strings", 0), (f"cat {HOSTILE}", 1))):
        samples = [{"index": j, "line": j + 1, "status": "passed" if j < passed else "failed",
                    "exit_code": 0 if j < passed else 1, "duration_s": 0.01 * (j + 1),
                    "stdout": f"out {HOSTILE}", "stderr": f"err {HOSTILE}" * 40,
                    "quality": {"bash_n": "ok", "bashlex": "ok", "shellcheck": {"checked": True, "clean": False,
                                                                                 "codes": [f"SC{HOSTILE}"]},
                                "codebleu": {"codebleu": 0.5}}} for j in range(3)]
        tasks.append({"task_id": f"{cat}/t{i} {HOSTILE}", "category": cat, "n": 3, "passed": passed,
                      "sound": i != 1, "samples": samples})
    ms = [metric("eval.pass@1", (2 / 3 + 0 + 1 / 3) / 3, "fraction", True, note=HOSTILE),
          metric("eval.pass@1.strings", (2 / 3 + 0) / 2, "fraction", True, labels={"category": "strings", "tasks": 2}),
          metric(f"eval.pass@1.cat {HOSTILE}", 1 / 3, "fraction", True, labels={"category": f"cat {HOSTILE}", "tasks": 1}),
          metric("eval.samples", 9, "count", None), metric("eval.status.passed", 3, "count", None),
          metric("eval.status.failed", 6, "count", None), metric("eval.codebleu", 0.5, "ratio", True)]
    return _report("eval", {"samples": f"samples/{HOSTILE}.jsonl", "tasks": {"name": "suite", "tasks": 3},
                            "k": [1, 2]}, ms, env, "c" * 40, "2026-01-03T00:00:00+00:00",
                   details={"tasks": tasks, "notes": [HOSTILE], "unsound": [{"task_id": HOSTILE}]})


def _claims():
    claims = [{"id": f"c{i} {HOSTILE}", "metric": "train.tokens_per_s", "value": v, "unit": "tokens/s",
               "hardware": f"M1 {HOSTILE}", "verdict": verdict, "basis": "feasibility",
               "evidence": f"because {HOSTILE}", "quote": f"quote {HOSTILE}",
               "source": {"file": "seed-README.md", "line": i},
               "findings": [{"verdict": verdict, "basis": "feasibility", "evidence": f"one {HOSTILE}"},
                            {"verdict": None, "basis": "measurement", "evidence": "two"}]}
              for i, (v, verdict) in enumerate(((42000, "impossible"), (3.45, "unverified"), (12.5, "confirmed"),
                                                (7, "impossible")))]
    ms = [metric(f"claims.{v}", n, "claims", None) for v, n in (("impossible", 2), ("unverified", 1), ("confirmed", 1))]
    r = _report("claims", {"claims_file": "fixtures/claims/seed-claims.json"}, ms, ENV, "d" * 40,
                "2026-01-04T00:00:00+00:00")
    r["claims"] = claims
    return r


def _train(folder: Path):
    lines = [{"kind": "eval", "step": 0, "val_loss": 8.3}] + [
        {"kind": "train", "step": s, "loss": 8.3 - 0.01 * s} for s in range(1, 301)] + [
        {"kind": "eval", "step": 300, "val_loss": 5.4}, "not json"]
    (folder / "train.metrics.jsonl").write_text("\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines))
    ms = [metric("train.loss", 5.31, "nats/token", False), metric("train.val_loss", 5.4, "nats/token", False),
          metric("train.tokens_per_s", None, "tokens/s", True, samples=[300.0, 310.0, 290.0, 305.0])]
    return _report("train", {"preset": "small", "stage": "pretrain", "steps": 300}, ms, ENV, "b" * 40,
                   "2026-01-02T00:00:00+00:00", artifacts={"metrics_jsonl": "train.metrics.jsonl"})


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    d = tmp_path_factory.mktemp("reports")
    (d / "gpu").mkdir()
    write_report(_bench("a" * 40, "2026-01-01T00:00:00+00:00", 1.0), d / "bench-1.json")
    write_report(_bench("b" * 40, "2026-01-02T00:00:00+00:00", 1.1), d / "bench-2.json")
    write_report(_bench("c" * 40, "2026-01-03T00:00:00+00:00", 1.05), d / "bench-3.json")
    write_report(_bench("c" * 40, "2026-01-03T00:00:00+00:00", 90.0, GPU_ENV), d / "gpu" / "bench-1.json")
    write_report(_eval(), d / "eval.json")
    write_report(_claims(), d / "claims.json")
    write_report(_train(d), d / "train.json")
    write_report(_report("generate", {"checkpoint": "runs/x", "step": 20, "stage": "finetune"},
                         [metric("gen.tokens_per_s", None, "tokens/s", True, samples=[80.0, 90.0, 85.0])],
                         ENV, "c" * 40, "2026-01-03T00:00:00+00:00"), d / "generate.json")
    write_report(_report("demo", {}, [metric("demo.wall_s", 612.5, "s", False)], ENV, "c" * 40,
                         "2026-01-03T00:00:00+00:00", details={"steps": []}), d / "demo.json")
    write_report(_report("compare", {}, [], ENV, "c" * 40, "2026-01-03T00:00:00+00:00"), d / "compare.json")
    reports = load_all([d])
    site = tmp_path_factory.mktemp("site")
    pages = build_site(reports, site)
    return d, reports, site, pages


@pytest.fixture(scope="module")
def committed(tmp_path_factory):
    reports = load_all([ROOT / "results"])
    if not reports:
        pytest.skip("no committed reports under results/")
    site = tmp_path_factory.mktemp("committed-site")
    return reports, site, build_site(reports, site)


class Page(HTMLParser):
    """Tags, ids, links and the numeric cells (data-value + the text shown first) of one page."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags, self.ids, self.links, self.values, self.text = [], set(), [], [], []
        self._open = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if "id" in a:
            self.ids.add(a["id"])
        for k in ("href", "src"):
            if a.get(k) is not None:
                self.links.append(a[k])
        if "data-value" in a:
            self._open = {**a, "shown": None}
            self.values.append(self._open)

    def handle_data(self, data):
        self.text.append(data)
        if self._open is not None and self._open["shown"] is None and data.strip():
            self._open["shown"] = data.strip()
            self._open = None


def parse_shown(s: str) -> float:
    """The number a reader sees, back as a float (inverse of site_html.fmt up to its rounding)."""
    s = s.replace(",", "").replace("†", "").strip()
    for suf, mul in (("GiB", 2**30), ("MiB", 2**20), ("%", 0.01)):
        if s.endswith(suf):
            return float(s[: -len(suf)].strip()) * mul
    return float(s)


def _pages(site: Path) -> dict[str, Page]:
    return {str(p.relative_to(site)): Page(p.read_text(encoding="utf-8")) for p in sorted(site.rglob("*.html"))}


def _check_numbers(reports, site: Path) -> int:
    """Every cell tied to a report metric shows that metric's exact value; returns how many were checked."""
    by_name = {e.name: e.report for e in entries_of(reports)}
    checked = 0
    for rel, page in _pages(site).items():
        for cell in page.values:
            v = float(cell["data-value"])
            assert cell["shown"] is not None, (rel, cell)
            shown = parse_shown(cell["shown"])
            assert math.isclose(shown, v, rel_tol=6e-3, abs_tol=1e-12 + 6e-5 * (abs(v) < 1)), (rel, cell)
            if cell.get("data-report") and cell.get("data-metric"):
                r = by_name[cell["data-report"]]
                values = [m["value"] for m in r["metrics"] if m["name"] == cell["data-metric"]]
                assert v in values, (rel, cell["data-metric"], v, values)
                checked += 1
    return checked


def _check_links(site: Path):
    pages = _pages(site)
    for rel, page in pages.items():
        for link in page.links:
            assert not re.match(r"^(https?:|//|javascript:)", link, re.I), (rel, link)
            if link.startswith("data:"):
                continue
            target, _, anchor = link.partition("#")
            dest = (site / rel).parent / target if target else site / rel
            assert dest.is_file(), (rel, link)
            if anchor and dest.suffix == ".html":
                assert anchor in pages[str(dest.resolve().relative_to(site.resolve()))].ids, (rel, link)


def test_pages_of_every_kind(synthetic):
    d, reports, site, pages = synthetic
    names = sorted(str(p.relative_to(site)) for p in pages)
    assert names[0] == "bench.html" and pages[0].name == "index.html"
    for want in ("index.html", "bench.html", "train.html", "eval.html", "claims.html", "eval/eval.html",
                 "bench/train.tokens_per_s.html", "bench/train.peak_memory_bytes.html", "bench/train.mfu.html"):
        assert want in names
    assert sorted(p.name for p in (site / "reports").iterdir()) == sorted(
        ["bench-1.json", "bench-2.json", "bench-3.json", "gpu-bench-1.json", "eval.json", "claims.json", "train.json",
         "generate.json", "demo.json", "compare.json"])
    for rel, page in _pages(site).items():
        assert not any(t == "script" for t, _ in page.tags), rel
        assert "Content-Security-Policy" in (site / rel).read_text()
        assert "Hardware and versions" in "".join(page.text), rel
    _check_links(site)


def test_numbers_equal_report_values(synthetic):
    d, reports, site, pages = synthetic
    assert _check_numbers(reports, site) > 40
    bench = (site / "bench" / "train.tokens_per_s.html").read_text()
    assert "NVIDIA H200" in bench and bench.count("<svg") == 2  # one figure per hardware
    cpu = bench[bench.index("Test CPU (2 cores, BLAS openblas)</h2>"):]
    svg = cpu[:cpu.index("</svg>")]
    ticks = [svg.index(f">{c}+<") if f">{c}+<" in svg else svg.index(f">{c}<") for c in ("aaaaaaa", "bbbbbbb", "ccccccc")]
    assert ticks == sorted(ticks)  # one x position per commit, in time order
    assert svg.count("<polyline") == 2  # one series per framework, joined across the commits
    claims = "".join(_pages(site)["claims.html"].text)
    assert "impossible 2" in claims and "unverified 1" in claims and "confirmed 1" in claims
    train = (site / "train.html").read_text()
    assert "300 steps logged, from train.metrics.jsonl" in train and "<polyline" in train


def test_hostile_strings_are_text_not_markup(synthetic):
    d, reports, site, pages = synthetic
    shown = 0
    for rel, page in _pages(site).items():
        for tag, attrs in page.tags:
            assert tag not in ("script", "img", "iframe", "object", "embed"), (rel, tag)
            assert not any(k.startswith("on") for k in attrs), (rel, tag, attrs)
        shown += "".join(page.text).count(HOSTILE)
    raw = "".join(p.read_text() for p in site.rglob("*.html"))
    assert "<script>" not in raw and "onerror=alert" not in raw.replace("onerror=alert(1)&gt;", "")
    assert shown >= 10  # the hostile text is displayed verbatim (task ids, output, evidence, hardware, ...)


def test_eval_page_drill_down(synthetic):
    d, reports, site, pages = synthetic
    page = (site / "eval" / "eval.html").read_text()
    assert page.count("<details") == 3  # one per task
    assert page.count('class="badge s-passed">passed<') == 3 and page.count('class="badge s-failed">failed<') == 6
    assert "more characters)" in page  # stderr is cut to a head
    assert "pass@2" in page  # a k the report did not break down by category is computed from the tasks


def test_per_category_pass_at_k_recomputed_matches_committed_report():
    p = ROOT / "results" / "eval-weak.json"
    if not p.is_file():
        pytest.skip("results/eval-weak.json not committed")
    r = json.loads(p.read_text())
    [e] = entries_of([(p, r)])
    ks, cats = categories(e)
    stripped = json.loads(json.dumps(r))
    stripped["metrics"] = [m for m in r["metrics"] if not (m.get("labels") or {}).get("category")]
    [e2] = entries_of([(p, stripped)])
    _, computed = categories(e2)
    assert 1 in ks and set(cats) == set(computed)
    for cat, by_k in cats.items():
        assert by_k[1][1] is not None and computed[cat][1][1] is None
        assert math.isclose(by_k[1][0], computed[cat][1][0], rel_tol=1e-12)


def test_committed_results_site(committed):
    reports, site, pages = committed
    assert _check_numbers(reports, site) > 10
    _check_links(site)
    text = {rel: "".join(p.text) for rel, p in _pages(site).items()}
    for e in entries_of(reports):
        r = e.report
        assert e.hardware in text["index.html"]
        if r["kind"] == "eval":
            m = next((m for m in r["metrics"] if m["name"] == "eval.pass@1"), None)
            if m is None:  # sampled with --generate-only: its page says it was not scored
                assert r["config"].get("scored") is False and "not scored" in text[f"eval/{e.name}.html"]
            else:
                assert fmt(m["value"], "fraction") in text[f"eval/{e.name}.html"]
        if r["kind"] == "claims":
            counts = {}
            for c in r["claims"]:
                counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
            for v, n in counts.items():
                assert f"{v} {n}" in text["claims.html"]


def test_committed_scaling_report_on_the_index(committed):
    """The newest data-parallel scaling report's efficiencies are the index's (older ones of the same
    configurations, e.g. dp/bucket-sweep, are superseded there)."""
    reports, site, pages = committed
    scaling = sorted((e for e in entries_of(reports) if e.kind == "scaling"), key=lambda e: e.created)
    if not scaling:
        pytest.skip("no scaling report committed")
    index = "".join(_pages(site)["index.html"].text)
    assert "Data-parallel scaling" in index
    eff = [m for m in scaling[-1].report["metrics"] if m["name"] == "scaling.efficiency"]
    assert eff and all(fmt(m["value"], m["unit"]) in index for m in eff)


def test_rebuild_in_place_and_refuse_foreign_folder(synthetic, tmp_path):
    d, reports, site, pages = synthetic
    (site / "eval" / "stale.html").write_text("old")
    build_site(reports[:2], site)
    assert not (site / "eval" / "stale.html").exists() and not (site / "claims.json").exists()
    build_site(reports, site)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="already holds other files"):
        build_site(reports, foreign)
    with pytest.raises(UsageError, match="no reports"):
        build_site([], tmp_path / "empty")


def test_publish_cli_writes_site_and_skips_its_own_copies(synthetic, tmp_path, capsys):
    d, reports, site, pages = synthetic
    inside = d / "site"
    assert main(["publish", str(d), "--out", str(tmp_path / "md"), "--no-plots", "--site", str(inside)]) == 0
    assert str(inside / "index.html") in capsys.readouterr().out
    assert (tmp_path / "md" / "RESULTS.md").is_file()
    assert len(load_all([d])) == len(reports)  # the copies under site/reports are not new reports
    assert main(["publish", str(d), "--out", str(tmp_path / "md"), "--no-plots", "--site", str(inside)]) == 0
    assert sorted(p.name for p in (inside / "reports").iterdir()) == sorted(p.name for p in (site / "reports").iterdir())


_CLAIMS = _claims()


def _claims_with(text: str) -> dict:
    r = json.loads(json.dumps(_CLAIMS))
    r["claims"][0].update(evidence=text, quote=text, id=text, findings=[])
    return r


_BASE_TAGS = [t for t, _ in Page(claims_page(entries_of([(Path("c.json"), _claims_with("x"))]))).tags]


@given(st.text(st.characters(exclude_categories=()), min_size=1, max_size=60))  # surrogates too: JSON allows them
def test_any_report_text_is_shown_verbatim_and_adds_no_markup(text):
    html = claims_page(entries_of([(Path("c.json"), _claims_with(text))]))
    page = Page(html.encode("utf-8").decode("utf-8"))  # what is written must be valid UTF-8
    assert [t for t, _ in page.tags] == _BASE_TAGS
    # controls drawn as control pictures, lone surrogates as U+FFFD; the rest verbatim
    shown = "".join(chr(0x2400 + ord(c)) if ord(c) < 0x20 and c not in "\t\n\r" else
                    "\u2421" if c == "\x7f" else "\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    assert "".join(page.text).count(shown) >= 3  # id, evidence, quote


def test_number_format_and_ticks():
    assert fmt(0.06086956521739126, "fraction") == "6.09%" and fmt(1.0, "ratio") == "100%"
    assert fmt(130634.29431727831, "tokens/s") == "130,634" and fmt(138.0, "count") == "138"
    assert fmt(38427347576.0, "bytes") == "35.788 GiB" and fmt(None) == "–" and fmt(4.862784385681152) == "4.863"
    for lo, hi in ((0.0, 1.0), (93.5, 207.1), (1.3e5, 1.6e5), (-2.0, 3.0)):
        t = nice_ticks(lo, hi)
        assert t[0] <= lo and t[-1] >= hi and len(t) <= 12


def test_ablation_variants_and_extra_labels_are_separate_configurations(tmp_path):
    """Two variants of one shape in one report (e.g. memory limits) must not collapse into one overview row."""
    from harness.site.build import config_label

    base = {"preset": "tiny", "batch": 16, "seq": 1024, "dtype": "bfloat16", "grad_checkpoint": "off",
            "framework": "mlx"}
    ms = [metric("train.tokens_per_s", 100.0, "tokens/s", True, labels={**base, "variant": "default"}),
          metric("train.tokens_per_s", 90.0, "tokens/s", True, labels={**base, "variant": "lim10"}),
          metric("train.tokens_per_s", 95.0, "tokens/s", True, labels={**base, "memory_limit_gb": 20.0}),
          metric("train.tokens_per_s", 99.0, "tokens/s", True, labels=base)]
    path = write_report(make_report("bench", {"preset": "tiny"}, ms, "ok"), tmp_path / "a.json")
    (e,) = entries_of([(Path(path), json.loads(Path(path).read_text()))])
    labels = [config_label(e, m) for m in ms]
    assert labels == ["tiny b16×1024 bfloat16 · mlx [default]", "tiny b16×1024 bfloat16 · mlx [lim10]",
                      "tiny b16×1024 bfloat16 · mlx [memory_limit_gb=20.0]", "tiny b16×1024 bfloat16 · mlx"]
    out = tmp_path / "site"
    build_site([(Path(path), json.loads(Path(path).read_text()))], out)
    index = (out / "index.html").read_text()
    rows = [r for r in index.split("<tr") if "tiny b16" in r]
    assert len(rows) == 4  # one overview row per configuration, each with its own value
    for label, m in zip(labels, ms):
        (row,) = [r for r in rows if f">{label}<" in r.replace("&times;", "×")]
        assert fmt(m["value"], m["unit"]) in row


def test_scores_are_not_percentages_and_intervals_follow_the_value():
    from harness.site.html import num

    assert ">0.7381<" in num(0.7381, "ratio", metric="eval.codebleu") and "%" not in num(0.74, "ratio", metric="eval.bleu")
    cell = num(0.5, "fraction", metric="eval.pass@1", ci=[0.25, 0.75])
    assert cell.index("50%") < cell.index('class="ci"') and "[25%, 75%]" in cell
