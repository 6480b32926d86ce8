"""Inline SVG plots for the results site, made in Python: no JavaScript, nothing fetched, crisp at any zoom,
and every point carries its exact value in a <title> tooltip. Two shapes cover the site: a line chart
with IQR bars (benchmark history, loss curves) and grouped horizontal bars (per-category pass@k,
verdict counts)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from .html import esc
from ..numbers import percent, short  # noqa: F401

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
FONT = 'font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif"'


@dataclass
class Point:
    x: float
    y: float
    lo: float | None = None  # IQR bar (q1, q3) where the value was repeated
    hi: float | None = None
    tip: str = ""


@dataclass
class Series:
    name: str
    points: list[Point]
    color: str = ""
    line: bool = True
    dashed: bool = False
    marker: float = 3.5  # radius; 0 for none


@dataclass
class Bar:
    value: float | None
    color: str
    tip: str = ""
    lo: float | None = None
    hi: float | None = None


@dataclass
class BarGroup:
    label: str
    bars: list[Bar] = field(default_factory=list)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Ticks on a 1-2-5 grid covering [lo, hi]."""
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    out, t = [], start
    while t <= hi + step * 1e-9:
        out.append(round(t, 12))
        t += step
    if out[-1] < hi:
        out.append(round(t, 12))
    return out


def log_ticks(lo: float, hi: float) -> list[float]:
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    return [10.0 ** e for e in range(a, b + 1)]


def _text(x, y, s, anchor="middle", size=11, extra="") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" {extra}>{esc(s)}</text>'


def line_chart(series: list[Series], *, x_label: str, y_label: str, title: str = "",
               x_ticks: list[tuple[float, str]] | None = None, y_fmt: Callable[[float], str] = short,
               log_y: bool | None = None, width: int = 760, height: int = 320) -> str:
    """Series of points with optional IQR bars; `x_ticks` names categorical x positions (commits)."""
    for i, s in enumerate(series):
        s.color = s.color or PALETTE[i % len(PALETTE)]
    pts = [p for s in series for p in s.points if p.y is not None and math.isfinite(p.y)]
    ys = [v for p in pts for v in (p.y, p.lo, p.hi) if v is not None and math.isfinite(v)]
    if not pts:
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="40" {FONT}>' \
               f'{_text(10, 24, "no data", "start")}</svg>'
    if log_y is None:
        log_y = min(ys) > 0 and max(ys) / min(ys) > 50
    ml, mr, mt, mb = 72, 18, 26 if title else 12, 58
    legend_rows = len(series)
    ph = height - mt - mb
    total_h = height + 16 * legend_rows + 4
    pw = width - ml - mr
    xs = [p.x for p in pts] + [t[0] for t in (x_ticks or [])]
    x0, x1 = min(xs), max(xs)
    if x_ticks:
        x0, x1 = x0 - 0.5, x1 + 0.5
    elif x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if log_y:
        yt = log_ticks(min(ys), max(ys))
        t0, t1 = math.log10(yt[0]), math.log10(yt[-1])
        fy = lambda v: mt + ph - (math.log10(v) - t0) / (t1 - t0 or 1) * ph  # noqa: E731
    else:
        lo, hi = min(ys), max(ys)
        pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 1.0
        yt = nice_ticks(min(0.0, lo) if lo >= 0 and lo < 0.35 * hi else lo - pad, hi + pad)
        fy = lambda v: mt + ph - (v - yt[0]) / (yt[-1] - yt[0]) * ph  # noqa: E731
    fx = lambda v: ml + (v - x0) / (x1 - x0) * pw  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {total_h}" width="{width}" '
           f'height="{total_h}" role="img" {FONT}><title>{esc(title or y_label)}</title>']
    if title:
        out.append(_text(ml + pw / 2, 16, title, size=13, extra='font-weight="600"'))
    for t in yt:
        y = fy(t)
        out.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e7ec"/>')
        out.append(_text(ml - 6, y + 4, y_fmt(t), "end"))
    if x_ticks:
        for xv, lab in x_ticks:
            x = fx(xv)
            for j, part in enumerate(str(lab).split("\n")[:2]):
                out.append(_text(x, mt + ph + 16 + 12 * j, part, size=10))
    else:
        for t in nice_ticks(x0, x1, 6):
            if x0 <= t <= x1:
                out.append(_text(fx(t), mt + ph + 16, short(t)))
    out.append(f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#9aa5b1"/>')
    out.append(_text(ml + pw / 2, mt + ph + 44, x_label))
    out.append(_text(0, 0, y_label, extra=f'transform="translate(16 {mt + ph / 2:.0f}) rotate(-90)"'))
    for s in series:
        good = [p for p in s.points if p.y is not None and math.isfinite(p.y) and (not log_y or p.y > 0)]
        if s.line and len(good) > 1:
            path = " ".join(f"{fx(p.x):.1f},{fy(p.y):.1f}" for p in good)
            dash = ' stroke-dasharray="5 3"' if s.dashed else ""
            out.append(f'<polyline points="{path}" fill="none" stroke="{s.color}" stroke-width="1.6"{dash}/>')
        for p in good:
            x, y = fx(p.x), fy(p.y)
            if p.lo is not None and p.hi is not None and (not log_y or p.lo > 0):
                a, b = fy(p.lo), fy(p.hi)
                out.append(f'<path d="M{x:.1f},{a:.1f}V{b:.1f}M{x - 4:.1f},{a:.1f}h8M{x - 4:.1f},{b:.1f}h8" '
                           f'stroke="{s.color}" stroke-width="1.2" fill="none"/>')
            if s.marker:
                out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{s.marker}" fill="{s.color}">'
                           f'<title>{esc(p.tip or f"{s.name}: {p.y!r}")}</title></circle>')
    ly = height + 2
    for i, s in enumerate(series):
        y = ly + 16 * i
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        out.append(f'<line x1="{ml}" x2="{ml + 22}" y1="{y - 4}" y2="{y - 4}" stroke="{s.color}" '
                   f'stroke-width="2.5"{dash}/>')
        out.append(_text(ml + 28, y, s.name, "start"))
    out.append("</svg>")
    return "".join(out)


def bar_chart(groups: list[BarGroup], *, x_label: str, legend: list[tuple[str, str]] = (),
              x_max: float | None = None, x_fmt: Callable[[float], str] = short, width: int = 700) -> str:
    """Horizontal bars, one row per group, one bar per entry of the group (e.g. pass@1 and pass@10)."""
    nb = max((len(g.bars) for g in groups), default=1) or 1
    bh, gap = 12, 8
    rows_h = [nb * bh + gap for _ in groups]
    label_w = min(260, 16 + 6.6 * max((len(g.label) for g in groups), default=4))
    ml, mr, mt = label_w, 60, 8
    ph = sum(rows_h)
    leg_h = 18 if legend else 0
    height = mt + ph + 40 + leg_h
    pw = width - ml - mr
    vals = [v for g in groups for b in g.bars for v in (b.value, b.hi) if v is not None]
    hi = x_max if x_max is not None else (max(vals) if vals else 1.0) or 1.0
    xt = nice_ticks(0.0, hi, 5)
    fx = lambda v: ml + v / xt[-1] * pw  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
           f'height="{height}" role="img" {FONT}><title>{esc(x_label)}</title>']
    for t in xt:
        x = fx(t)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{mt}" y2="{mt + ph}" stroke="#e3e7ec"/>')
        out.append(_text(x, mt + ph + 14, x_fmt(t)))
    y = mt
    for g, h in zip(groups, rows_h):
        lab = g.label if len(g.label) <= 38 else g.label[:37] + "…"
        out.append(f'<g><title>{esc(g.label)}</title>{_text(ml - 6, y + (h - gap) / 2 + 4, lab, "end")}</g>')
        for j, b in enumerate(g.bars):
            by = y + j * bh
            if b.value is not None:
                w = max(fx(b.value) - ml, 0.0)
                out.append(f'<rect x="{ml}" y="{by:.1f}" width="{w:.1f}" height="{bh - 2}" fill="{b.color}">'
                           f'<title>{esc(b.tip or repr(b.value))}</title></rect>')
                out.append(_text(ml + w + 4, by + bh - 3, x_fmt(b.value), "start", size=10))
            if b.lo is not None and b.hi is not None:
                cy = by + (bh - 2) / 2
                out.append(f'<path d="M{fx(b.lo):.1f},{cy:.1f}H{fx(b.hi):.1f}" stroke="#222" stroke-width="1.2"/>')
        y += h
    out.append(f'<line x1="{ml}" x2="{ml}" y1="{mt}" y2="{mt + ph}" stroke="#9aa5b1"/>')
    out.append(_text(ml + pw / 2, mt + ph + 32, x_label))
    lx = ml
    for name, color in legend:
        out.append(f'<rect x="{lx}" y="{height - 14}" width="12" height="10" fill="{color}"/>')
        out.append(_text(lx + 16, height - 5, name, "start"))
        lx += 28 + 7 * len(name)
    out.append("</svg>")
    return "".join(out)
