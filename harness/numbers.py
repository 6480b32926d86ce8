"""How a number is written for a reader, in tables, pages, plots and the claims audit's evidence.

    fmt(130634.29, "tokens/s") -> "130,634"     fmt(0.0609, "fraction") -> "6.09%"
    fmt(38427347576, "bytes")  -> "35.788 GiB"  fmt(4.8627) -> "4.863"      fmt(4.2e19) -> "4.2e+19"
    fmt(1.0, "score") -> "1"
    short(2.5e6) -> "2.5M" (axis labels)        percent(0.25) -> "25%"
"""
from __future__ import annotations

import math

PERCENT_UNITS = ("fraction", "ratio")
MISSING = "–"


def num(v) -> float | None:
    """v as a float when it is a number (bools are not), else None."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def fmt(v, unit: str = "", digits: int = 4, percent_places: int | None = None) -> str:
    """`digits` significant digits (3 for percentages, or `percent_places` decimals where a table column
    lines up on them), whole numbers and values from 1,000 to 10^12 in full with thousands separated, bytes
    in GiB or MiB; None and non-finite values as a dash."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return MISSING
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if unit == "bytes":
        return f"{v / 2**30:.3f} GiB" if abs(v) >= 2**28 else f"{v / 2**20:.2f} MiB"
    if unit in PERCENT_UNITS:
        return percent(v) if percent_places is None else f"{100 * v:.{percent_places}f}%"
    if unit == "score":  # a similarity on [0, 1] such as BLEU: digits, never a percentage or a whole number
        return f"{v:.{digits}g}"
    a = abs(v)
    if 1e3 <= a < 1e12 or (float(v).is_integer() and a < 1e3):
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def percent(v: float) -> str:
    return f"{100 * v:.3g}%"


def short(v: float) -> str:
    """An axis label: 3 significant digits with k/M/G suffixes."""
    a = abs(v)
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{v / div:.3g}{suf}"
    return "0" if v == 0 else f"{v:.3g}"
