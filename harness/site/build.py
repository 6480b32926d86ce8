"""`harness publish --site DIR`: a static HTML site from any set of reports, opened from disk.

Pages: index.html (latest key values per environment), bench.html + bench/<metric>.html (history across
commits, one series per configuration, IQR bars, as asv publishes), train.html (loss curves),
eval.html + eval/<report>.html (per-category pass@k, per-task and per-sample drill-down), claims.html
(every claim with its verdict and evidence). Plots are inline SVG drawn here; the reports themselves are
copied under reports/ so every number links to the file it came from."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..errors import UsageError
from ..report import atomic_write_text
from .html import (Entry, caption, compact, env_block, esc, fmt, footer, iqr_bounds, num, page, slug, spread,
                        table, td)
from .svg import PALETTE, Point, Series, line_chart, percent, short

MARKER = ".harness-site"  # marks a folder as ours: rebuilt in place, and skipped when loading reports
KEY_METRICS = {
    "bench": ("train.tokens_per_s", "train.step_time_s", "train.mfu", "train.peak_memory_bytes",
              "gen.tokens_per_s", "gen.first_token_s"),
    "train": ("train.loss", "train.val_loss", "train.tokens_per_s", "train.mfu", "train.peak_memory_bytes"),
    "eval": ("eval.pass@1", "eval.pass@10", "eval.syntax.bash_n", "eval.syntax.bashlex", "eval.shellcheck_clean",
             "eval.bleu", "eval.codebleu", "eval.sampling_tokens_per_s", "eval.sampling_decode_tokens_per_s"),
    "generate": ("gen.tokens_per_s", "gen.first_token_s"),
    "demo": ("demo.wall_s",),
    "scaling": ("scaling.tokens_per_s", "scaling.speedup", "scaling.efficiency", "scaling.loss_max_rel_diff"),
}


def entries_of(reports: list[tuple[Path, dict]]) -> list[Entry]:
    """Entries with unique page-safe names: the report's path below the inputs' common folder."""
    if not reports:
        return []
    paths = [Path(os.path.abspath(p)) for p, _ in reports]
    root = Path(os.path.commonpath([p.parent for p in paths]))
    out, used = [], set()
    for p, (_, r) in zip(paths, reports):
        base = slug(str(p.relative_to(root).with_suffix("")).replace(os.sep, "-"))
        name, i = base, 2
        while name in used:
            name, i = f"{base}-{i}", i + 1
        used.add(name)
        out.append(Entry(p, r, name, str(p.relative_to(root))))
    return sorted(out, key=lambda e: (e.created, e.name))


_BENCH_AXES = {"preset", "batch", "seq", "dtype", "grad_checkpoint", "framework", "new_tokens"}


def _variant_tag(lab: dict) -> str:
    """What else tells two bench configurations apart: an ablation's variant (which implies its settings), or
    any other label (dropout, memory limit, ...), e.g. " [lim24]" or " [dropout=0.0]"; "" for a plain one."""
    if lab.get("variant"):
        return f" [{lab['variant']}]"
    extra = sorted((k, v) for k, v in lab.items() if k not in _BENCH_AXES)
    return f" [{', '.join(f'{k}={v}' for k, v in extra)}]" if extra else ""


def config_label(e: Entry, m: dict | None = None) -> str:
    """What was measured, in a few words: a bench configuration, a training stage, an eval's samples."""
    from ..models import model_label

    c = e.report.get("config") or {}
    if e.kind == "bench" and m is not None:
        lab = m.get("labels") or {}
        if not lab:  # a bench report of another shape (e.g. one operation): its config names it
            return compact({k: v for k, v in c.items() if not isinstance(v, (dict, list))}, 80)
        gc = " ckpt" if str(lab.get("grad_checkpoint", "off")) not in ("off", "False", "false") else ""
        return (f"{lab.get('preset', c.get('preset', '?'))} b{lab.get('batch', '?')}×{lab.get('seq', '?')} "
                f"{lab.get('dtype', '?')}{gc} · {lab.get('framework', 'mlx')}{_variant_tag(lab)}")
    if e.kind == "train":
        d = e.report.get("details") if isinstance(e.report.get("details"), dict) else {}
        done, planned = d.get("final_step"), c.get("steps", "?")
        steps = f"{done} of {planned}" if done is not None and done != planned else f"{planned}"
        return f"{c.get('preset', '?')} {d.get('stage') or c.get('stage', '')} ({steps} steps)".replace("  ", " ")
    if e.kind == "eval":
        t = c.get("tasks")
        tasks = t.get("name") if isinstance(t, dict) else t
        src = c.get("samples") or c.get("checkpoint") or "?"
        by = model_label(c)
        return f"{Path(str(src)).name if '/' in str(src) else src}{f' from {by}' if by else ''} on {tasks or '?'}"
    if e.kind == "generate":
        return model_label(c) or f"{c.get('stage') or 'checkpoint'} step {c.get('step', '?')}"
    if e.kind == "scaling" and m is not None:
        lab = m.get("labels") or {}
        n = lab.get("world_size", "?")
        return (f"{lab.get('preset', '?')} {lab.get('global_batch', '?')}×{lab.get('seq_len', '?')} "
                f"on {n} process{'es' if n != 1 else ''}")
    return e.kind


def page_of(e: Entry, metric_name: str = "") -> str:
    """Site-relative link to the page that details a report (or one bench metric)."""
    if e.kind == "bench" and metric_name:
        return f"bench/{slug(metric_name)}.html"
    return {"eval": f"eval/{e.name}.html", "train": f"train.html#{e.name}",
            "claims": "claims.html"}.get(e.kind, e.href())


# ---------------------------------------------------------------- index

def _latest_table(kind: str, es: list[Entry]) -> str:
    """Rows: configurations of one kind; columns: its key metrics; each cell the latest measured value."""
    names = KEY_METRICS[kind]
    rows: dict[str, dict[str, tuple[Entry, dict]]] = {}
    for e in es:  # sorted by created_at, so later reports replace earlier ones
        for m in e.report.get("metrics", []):
            if m.get("name") in names:
                rows.setdefault(config_label(e, m), {})[m["name"]] = (e, m)
    used = [n for n in names if any(n in r for r in rows.values())]
    out = []
    for label, cells in sorted(rows.items()):
        newest = max((e for e, _ in cells.values()), key=lambda e: (e.created, e.name))
        line = td(label)
        for n in used:
            e, m = cells.get(n, (None, None))
            if m is None:
                line += td("")
                continue
            sp = spread(m)
            line += num(m.get("value"), m.get("unit", ""), metric=n, report=e.name,
                        extra=f'<br><a class="spread" href="{esc(page_of(e, n))}">{esc(sp)}</a>' if sp else "",
                        ci=(m.get("stats") or {}).get("ci95"))
        out.append(line + td(newest.created[:16].replace("T", " "), "nowrap") + td(newest.commit)
                   + td(f'<a href="{esc(newest.href())}">{esc(newest.name)}</a>', raw=True))
    units = {n: next(m.get("unit", "") for r in rows.values() for k, (_, m) in r.items() if k == n) for n in used}
    return table(["configuration", *[f"#{n} ({units[n]})" for n in used], "created (UTC)", "commit", "report"], out)


def index_page(entries: list[Entry]) -> str:
    parts = [f'<p class="lead">{len(entries)} reports: '
             + ", ".join(f"{sum(e.kind == k for e in entries)} {esc(k)}" for k in sorted({e.kind for e in entries}))
             + ". The latest value of each key metric, per environment; a value's link leads to its history or "
             "drill-down, the report link to the JSON it came from.</p>"]
    envs: dict[str, list[Entry]] = {}
    for e in entries:
        envs.setdefault(e.hardware, []).append(e)
    titles = {"bench": "Benchmarks (median of timed repeats)", "train": "Training runs", "eval": "Evaluations",
              "generate": "Generation", "demo": "Demo runs", "scaling": "Data-parallel scaling (same global batch)"}
    for hw, es in sorted(envs.items()):
        parts.append(f'<h2 id="env-{slug(hw)}">{esc(hw)}</h2>')
        parts.append(env_block(es[-1]))
        for kind in KEY_METRICS:
            ks = [e for e in es if e.kind == kind]
            if ks:
                parts.append(f"<h3>{esc(titles[kind])}</h3>" + _latest_table(kind, ks))
    claims = [e for e in entries if e.kind == "claims"]
    if claims:
        from .claims_page import verdict_counts_html

        e = claims[-1]
        parts.append('<h2 id="claims">Claims audit</h2>'
                     f'<p class="counts">{verdict_counts_html(e, "")} '
                     f'<a href="claims.html">all {len(e.report.get("claims", []))} claims with evidence</a></p>')
    rows = [td(f'<a href="{esc(e.href())}">{esc(e.name)}</a>', raw=True) + td(e.kind) + td(e.report.get("status"))
            + td(e.created) + td(e.commit) + td(e.hardware) + td(e.source) for e in entries]
    parts.append('<h2 id="reports">All reports</h2>'
                 + table(["report", "kind", "status", "created", "commit", "hardware", "source file"], rows))
    return page("Results overview", "\n".join(parts), here="index.html", footer=footer(entries))


# ---------------------------------------------------------------- benchmarks

def bench_metrics(entries: list[Entry]) -> dict[str, list[tuple[Entry, dict]]]:
    out: dict[str, list[tuple[Entry, dict]]] = {}
    for e in entries:
        if e.kind != "bench":
            continue
        for m in e.report.get("metrics", []):
            if isinstance(m.get("value"), (int, float)) or m.get("samples"):
                out.setdefault(m["name"], []).append((e, m))
    order = {n: i for i, n in enumerate(KEY_METRICS["bench"])}
    return dict(sorted(out.items(), key=lambda kv: (order.get(kv[0], 99), kv[0])))


def bench_index(metrics: dict, entries: list[Entry]) -> str:
    rows = []
    for name, ms in metrics.items():
        hws = sorted({e.hardware for e, _ in ms})
        series = {(e.hardware, config_label(e, m)) for e, m in ms}
        commits = {e.commit for e, _ in ms}
        rows.append(td(f'<a href="bench/{slug(name)}.html">{esc(name)}</a>', raw=True) + td(ms[0][1].get("unit"))
                    + td(len(series), "num") + td(len(ms), "num") + td(len(commits), "num") + td("; ".join(hws)))
    body = ('<p class="lead">One page per benchmark metric: its value at every commit measured, one series per '
            'configuration and framework, with interquartile-range bars over the timed repeats.</p>'
            + (table(["metric", "unit", "#series", "#points", "#commits", "hardware"], rows) if rows
               else '<p class="muted">no bench reports among the inputs (run <code>harness bench</code>)</p>'))
    return page("Benchmarks", body + passk_table(entries), here="bench.html", footer=footer(entries))


def passk_table(entries: list[Entry]) -> str:
    """The pass@k sampling table (harness.publish.passk_rows): generation tokens/s of n rows of one prompt by
    preset, n and framework."""
    from pathlib import Path

    from .publish import PASSK_FRAMEWORKS, passk_rows

    rows = [td(p) + td(n, "num") + "".join(td(fws.get(fw, "")) for fw in PASSK_FRAMEWORKS) + td(hw)
            for p, hw, n, fws in passk_rows([(Path(e.name), e.report) for e in entries if e.kind == "bench"])]
    if not rows:
        return ""
    return ('<h2 id="passk">pass@k sampling: n rows of one prompt decoded together</h2><p class="lead">Generation '
            'tokens/s summed over the rows (median [spread] over the timed runs, report named).</p>'
            + table(["preset", "n", "MLX (reference.generate)", "mlx-lm BatchGenerator", "PyTorch twin eager",
                     "twin, CUDA graphs", "hardware"], rows))


def bench_page(name: str, ms: list[tuple[Entry, dict]], entries: list[Entry]) -> str:
    unit = ms[0][1].get("unit", "")
    y_fmt = percent if unit in ("fraction", "ratio") else short
    parts = [f'<p class="lead">History of <code>{esc(name)}</code> ({esc(unit)}; '
             f'{"higher" if ms[0][1].get("higher_is_better") else "lower"} is better) across commits. '
             'Points are medians; bars span the interquartile range of the repeats.</p>']
    by_hw: dict[str, list[tuple[Entry, dict]]] = {}
    for e, m in ms:
        by_hw.setdefault(e.hardware, []).append((e, m))
    for hw, items in sorted(by_hw.items()):
        first_seen: dict[str, str] = {}
        for e, _ in items:
            first_seen.setdefault(e.commit, e.created)
        commits = sorted(first_seen, key=lambda c: (first_seen[c], c))
        xpos = {c: i for i, c in enumerate(commits)}
        ticks = [(i, f"{c[:7]}{'+' if c.endswith('dirty') else ''}\n{first_seen[c][:10]}") for i, c in enumerate(commits)]
        series: dict[str, list[Point]] = {}
        rows = []
        for e, m in items:
            label = config_label(e, m)
            b = iqr_bounds(m)
            v = m.get("value")
            tip = (f"{label}: {fmt(v, unit)}{' ' + unit if unit not in ('fraction', 'ratio', 'bytes') else ''}"
                   f"{f' (IQR {fmt(b[0], unit)}–{fmt(b[1], unit)})' if b else ''}; commit {e.commit}; {e.created}")
            if v is not None:
                series.setdefault(label, []).append(Point(xpos[e.commit], v, *(b or (None, None)), tip=tip))
            rows.append(td(label) + td(e.commit) + td(e.created) + num(v, unit, metric=name, report=e.name)
                        + num(b[0] if b else None, unit) + num(b[1] if b else None, unit)
                        + td((m.get("stats") or {}).get("n", 1), "num")
                        + td(f'<a href="../{esc(e.href())}">{esc(e.name)}</a>', raw=True))
        ss = [Series(k, pts, PALETTE[i % len(PALETTE)]) for i, (k, pts) in enumerate(sorted(series.items()))]
        w = min(0.25, 0.6 / len(ss)) if ss else 0  # dodge: series side by side at a commit, bars apart
        for i, sr in enumerate(ss):
            for pt in sr.points:
                pt.x += (i - (len(ss) - 1) / 2) * w
        parts.append(f'<h2 id="hw-{slug(hw)}">{esc(hw)}</h2>')
        parts.append("<figure>" + line_chart(ss, x_label="commit (first measured)", y_label=f"{name} ({unit})",
                                             x_ticks=ticks, y_fmt=y_fmt)
                     + caption([e for e, _ in items], f"{name} per commit on {hw}; one series per configuration "
                                                      "and framework; median with IQR bars.") + "</figure>")
        parts.append(table(["configuration", "commit", "created", "#value", "#q1", "#q3", "#n", "report"], rows))
    return page(f"Benchmark: {name}", "\n".join(parts), prefix="../", here="bench.html", footer=footer(entries))


# ---------------------------------------------------------------- training

def loss_curve(e: Entry) -> tuple[list[tuple[float, float]], list[tuple[float, float]], str]:
    """(train points, val points, where they came from): the metrics.jsonl artifact, else details."""
    art = (e.report.get("artifacts") or {}).get("metrics_jsonl")
    if art:
        p = Path(art) if Path(art).is_absolute() else e.path.parent / art
        if p.is_file():
            tr, va = [], []
            for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    d = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if not isinstance(d, dict) or not isinstance(d.get("step"), (int, float)):
                    continue
                if isinstance(d.get("loss"), (int, float)):
                    tr.append((d["step"], d["loss"]))
                if isinstance(d.get("val_loss"), (int, float)):
                    va.append((d["step"], d["val_loss"]))
            return tr, va, p.name
    d = e.report.get("details") if isinstance(e.report.get("details"), dict) else {}
    pairs = lambda xs: [(a, b) for a, b in (xs or []) if isinstance(b, (int, float))]  # noqa: E731
    return pairs(d.get("losses")), pairs(d.get("val_losses")), "report details"


def _thin(points: list, limit: int = 1500) -> list:
    step = max(1, len(points) // limit)
    return points[::step] if step == 1 or points[-1] in points[::step] else points[::step] + [points[-1]]


def train_page(entries: list[Entry]) -> str:
    trains = [e for e in entries if e.kind == "train"]
    parts = ['<p class="lead">Training runs: loss per step (solid) and validation loss (dashed), '
             'then the run\'s key metrics.</p>']
    if not trains:
        parts.append('<p class="muted">no train reports among the inputs (run <code>harness train</code> '
                     'or <code>harness demo</code>)</p>')
    for e in trains:
        c = e.report.get("config") or {}
        tr, va, src = loss_curve(e)
        ss = [Series("train loss", [Point(s, v, tip=f"step {s}: train loss {v!r}") for s, v in _thin(tr)],
                     PALETTE[0], marker=0 if len(tr) > 40 else 2.5),
              Series("validation loss", [Point(s, v, tip=f"step {s}: val loss {v!r}") for s, v in va],
                     PALETTE[1], dashed=True)]
        parts.append(f'<h2 id="{esc(e.name)}">{esc(config_label(e))} — {esc(e.hardware)}</h2>')
        parts.append(env_block(e))
        if tr or va:
            parts.append("<figure>" + line_chart([s for s in ss if s.points], x_label="step",
                                                 y_label="cross-entropy (nats/token)", log_y=False)
                         + caption([e], f"Loss curve of {config_label(e)} ({len(tr)} steps logged, from {src}).")
                         + "</figure>")
        rows = [td(f'<code>{esc(m["name"])}</code>', raw=True) + num(m.get("value"), m.get("unit", ""),
                                                                      metric=m["name"], report=e.name,
                                                                      ci=(m.get("stats") or {}).get("ci95"))
                + td(spread(m), "num") + td(m.get("unit")) + td(m.get("note", ""))
                for m in e.report.get("metrics", [])]
        parts.append(table(["metric", "#value", "#spread", "unit", "note"], rows))
        mc = c.get("model_config") or {}
        parts.append(f'<p class="muted">model {esc(json.dumps(mc, sort_keys=True))}; params '
                     f'{esc(fmt(c.get("params")))}; batch {esc(c.get("batch_size"))} × seq {esc(c.get("seq_len"))}'
                     f' × accum {esc(c.get("accum"))}; lr {esc(c.get("lr"))}; dtype {esc(c.get("dtype"))}</p>')
    return page("Training", "\n".join(parts), here="train.html", footer=footer(entries))


# ---------------------------------------------------------------- the site

def check_target(out: str | Path) -> None:
    """Refuse a file, or a folder holding anything but an earlier site (which is rebuilt in place)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--site {out} is a file; pass a folder for the site")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise UsageError(f"--site {out} already holds other files; pass an empty or new folder "
                         f"(a folder written by `harness publish --site` is rebuilt in place)")


def _prepare(out: Path) -> None:
    check_target(out)
    if out.is_dir():
        for sub in ("bench", "eval", "reports"):
            shutil.rmtree(out / sub, ignore_errors=True)
        for f in out.glob("*.html"):
            f.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by `harness publish --site`; rebuilt on every run\n")


def build_site(reports: list[tuple[Path, dict]], out: str | Path) -> list[Path]:
    """Write the site for `reports` ((path, report) pairs, as publish.load_all returns) into `out`;
    returns the pages written, index.html first."""
    from .claims_page import claims_page
    from .eval_page import eval_index, eval_page

    if not reports:
        raise UsageError("no reports to publish; pass report files or folders (default: results/)")
    out = Path(out)
    _prepare(out)
    entries = entries_of(reports)
    for e in entries:
        dst = out / e.href()
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(e.path, dst)
    pages = {"index.html": index_page(entries), "train.html": train_page(entries),
             "claims.html": claims_page(entries), "eval.html": eval_index(entries)}
    metrics = bench_metrics(entries)
    pages["bench.html"] = bench_index(metrics, entries)
    for name, ms in metrics.items():
        pages[f"bench/{slug(name)}.html"] = bench_page(name, ms, entries)
    for e in entries:
        if e.kind == "eval":
            pages[f"eval/{e.name}.html"] = eval_page(e, entries)
    written = [atomic_write_text(out / rel, text) for rel, text in pages.items()]
    for p in written:
        p.chmod(0o644)  # a site is for reading (mkstemp creates 0600)
    return written
