"""HTML building blocks of the static results site: escaping, number formatting, tables, captions and the
page frame. Every string that comes from a report passes through `esc` (task output may hold <script>);
every page forbids scripts and remote fetches in its Content-Security-Policy, so it opens from disk with
nothing fetched at view time."""
from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..environment import hardware_label
from ..numbers import PERCENT_UNITS, fmt  # noqa: F401
from ..resources import data_file

CSS_PATH = data_file("site.css")
# No script may run and nothing may be fetched: styles are inline, the only images are inline SVG.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
NAV = (("index.html", "Overview"), ("bench.html", "Benchmarks"), ("train.html", "Training"),
       ("eval.html", "Evaluation"), ("claims.html", "Claims audit"))


# C0 controls (but tab, newline, carriage return) and DEL shown as Unicode control pictures (U+2400..):
# task output may hold NULs and terminal escapes, which HTML would drop or mangle.
_CONTROLS = {c: 0x2400 + c for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20))} | {0x7F: 0x2421}
_SURROGATE = re.compile("[\ud800-\udfff]")


def esc(x) -> str:
    s = ("" if x is None else str(x)).translate(_CONTROLS)
    if not s.isascii():  # a lone surrogate (valid in JSON, not in UTF-8) becomes U+FFFD, not a crash
        s = _SURROGATE.sub("\ufffd", s)
    return html.escape(s, quote=True)


def slug(text: str) -> str:
    """A file-name and id-safe form of `text` (letters, digits, . _ -)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._") or "x"
    return s[:120]


@lru_cache(maxsize=1)
def css() -> str:
    return CSS_PATH.read_text(encoding="utf-8")


# ---------------------------------------------------------------- numbers

# BLEU and CodeBLEU are similarity scores on [0, 1] (sacrebleu's 0-100 divided by 100), not shares of anything:
# shown as 0.123, never as a percentage
SCORE_METRICS = ("eval.bleu", "eval.codebleu")


def display_unit(name: str | None, unit: str) -> str:
    return "score" if name and any(name == s or name.startswith(s + ".") for s in SCORE_METRICS) else unit


def num(v, unit: str = "", *, metric: str | None = None, report: str | None = None, cls: str = "num",
        extra: str = "", ci=None) -> str:
    """A table cell holding a number; `data-value` keeps the exact report value (tests compare it with the
    report and with the shown text, which comes first in the cell); `extra` is HTML placed after it, then the
    95% interval `ci` = [lo, hi] when given."""
    unit = display_unit(metric, unit)
    if ci and len(ci) == 2 and None not in ci:
        extra += f'<span class="ci" title="95% interval">[{esc(fmt(ci[0], unit))}, {esc(fmt(ci[1], unit))}]</span>'
    attrs = f' class="{cls}"'
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        attrs += f' data-value="{esc(repr(float(v)))}" title="{esc(repr(v))} {esc(unit)}"'
    if metric:
        attrs += f' data-metric="{esc(metric)}"'
    if report:
        attrs += f' data-report="{esc(report)}"'
    return f"<td{attrs}>{esc(fmt(v, unit))}{extra}</td>"


def iqr_bounds(m: dict) -> tuple[float, float] | None:
    """(q1, q3) of a metric's samples (statistics.quantiles, as report.stats computes its iqr), else
    median ± iqr/2 from the stats alone; None without either."""
    import statistics

    xs = m.get("samples") or []
    if len(xs) >= 2:
        q = statistics.quantiles(sorted(float(x) for x in xs), n=4)
        return q[0], q[2]
    s = m.get("stats") or {}
    if m.get("value") is not None and s.get("iqr") is not None and s.get("n", 0) > 1:
        return m["value"] - s["iqr"] / 2, m["value"] + s["iqr"] / 2
    return None


def spread(m: dict | None) -> str:
    """'±IQR/2, n' text for a repeated metric, empty for a single value."""
    if not m:
        return ""
    s = m.get("stats")
    if s and s.get("n", 0) > 1 and s.get("iqr") is not None:
        return f"±{fmt(s['iqr'] / 2, m.get('unit', ''))} (IQR/2), n={s['n']}"
    return ""


# ---------------------------------------------------------------- reports, environments, captions

@dataclass
class Entry:
    """One loaded report: where it came from, its page-safe name and its environment key."""
    path: Path
    report: dict
    name: str
    source: str = ""  # the path as shown: relative to the inputs' common folder
    hardware: str = field(init=False)

    def __post_init__(self):
        self.hardware = hardware_label(self.report.get("environment") or {})

    @property
    def kind(self) -> str:
        return self.report.get("kind", "?")

    @property
    def created(self) -> str:
        return str(self.report.get("created_at", ""))

    @property
    def commit(self) -> str:
        g = self.report.get("git") or {}
        c = g.get("commit")
        return (str(c)[:10] if c else "unknown") + ("+dirty" if g.get("dirty") else "")

    def href(self, prefix: str = "") -> str:
        return f"{prefix}reports/{self.name}.json"


def versions(env: dict) -> str:
    """The software versions behind a figure, one line."""
    mlx = env.get("mlx") or {}
    pk = env.get("packages") or {}
    parts = [f"MLX {mlx.get('version')} ({mlx.get('backend')})", f"Python {env.get('python')}"]
    for name in ("torch", "numpy", "tokenizers"):
        if pk.get(name):
            parts.append(f"{name} {pk[name]}")
    parts.append(f"BLAS {(env.get('blas') or {}).get('name')}")
    gpu = env.get("gpu") or []
    if gpu and gpu[0].get("driver"):
        parts.append(f"driver {gpu[0]['driver']}")
    parts.append((env.get("os") or {}).get("platform") or (env.get("os") or {}).get("system") or "?")
    return "; ".join(str(p) for p in parts)


def caption(entries: list[Entry], what: str) -> str:
    """A figure caption: what it shows, then the hardware and versions of every report behind it."""
    seen: dict[str, list[str]] = {}
    for e in entries:
        seen.setdefault(f"{e.hardware} — {versions(e.report.get('environment') or {})}", []).append(e.commit)
    lines = [esc(what)]
    for hw, commits in seen.items():
        cs = ", ".join(sorted(set(commits)))
        lines.append(f"<b>Hardware:</b> {esc(hw)}; <b>commit</b> {esc(cs)}")
    return "<figcaption>" + "<br>".join(lines) + "</figcaption>"


def env_block(e: Entry, prefix: str = "") -> str:
    env = e.report.get("environment") or {}
    cpu = env.get("cpu") or {}
    ram = env.get("ram_bytes")
    return (f'<div class="env"><b>{esc(e.hardware)}</b> — CPU {esc(cpu.get("model"))} ({esc(cpu.get("cores"))} cores)'
            f'{", RAM " + esc(fmt(ram, "bytes")) if ram else ""}; {esc(versions(env))}; harness '
            f'{esc(e.report.get("harness_version"))}; commit {esc(e.commit)}; created {esc(e.created)}; '
            f'report <a href="{esc(e.href(prefix))}">{esc(e.path.name)}</a></div>')


# ---------------------------------------------------------------- tables and pages

def table(header: list[str], rows: list[str], cls: str = "") -> str:
    """`rows` are already-built <tr> inner HTML strings (cells made with `td`/`num`); a header starting
    with '#' is a right-aligned numeric column."""
    th = "".join(f'<th{" class=num" if h.startswith("#") else ""}>{esc(h.lstrip("#"))}</th>' for h in header)
    body = "".join(f"<tr>{r}</tr>" for r in rows)
    return f'<table{f" class={cls}" if cls else ""}><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def td(text, cls: str = "", raw: bool = False) -> str:
    inner = text if raw else esc(text)
    return f'<td{f" class={cls}" if cls else ""}>{inner}</td>'


def badge(text: str, cls: str) -> str:
    return f'<span class="badge {esc(cls)}">{esc(text)}</span>'


def compact(obj, limit: int = 200) -> str:
    s = obj if isinstance(obj, str) else json.dumps(obj, sort_keys=True, default=str)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def page(title: str, body: str, *, prefix: str = "", here: str = "", footer: str = "") -> str:
    """A complete page; `prefix` is the way back to the site root ('' or '../')."""
    nav = "".join(f'<a href="{prefix}{h}"{" class=here" if h == here else ""}>{esc(t)}</a>' for h, t in NAV)
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="icon" href="data:,">'
            f"<title>{esc(title)} — harness results</title><style>{css()}</style></head>\n<body>"
            f'<header><a class="brand" href="{prefix}index.html">harness results</a>{nav}</header>\n'
            f"<main><h1>{esc(title)}</h1>\n{body}\n</main>\n<footer>{footer}</footer></body></html>\n")


def footer(entries: list[Entry]) -> str:
    """Hardware and versions of every environment on the site (as mlx-lm's benchmark tables end)."""
    seen: dict[str, set] = {}
    for e in entries:
        env = e.report.get("environment") or {}
        seen.setdefault(e.hardware, set()).add(versions(env))
    items = "".join(f"<li><b>{esc(hw)}</b>: {esc(' | '.join(sorted(v)))}</li>" for hw, v in sorted(seen.items()))
    from .. import __version__

    return (f"<b>Hardware and versions</b><ul>{items}</ul>Generated by harness {esc(__version__)} "
            f"(<code>harness publish --site</code>) from {len(entries)} report(s); no scripts, nothing fetched.")
