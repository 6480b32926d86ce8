"""Where a completion ends: before the earliest of its stop strings (MultiPL-E's `stop_tokens`, human-eval's
convention). One function, free of MLX, so scoring samples needs no model."""
from __future__ import annotations

from typing import Sequence


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """`text` cut before the earliest occurrence of any stop string (MultiPL-E / human-eval convention)."""
    cut = min((p for p in (text.find(s) for s in stop if s) if p >= 0), default=len(text))
    return text[:cut]
