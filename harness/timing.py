"""Timing primitives shared by every benchmark: warm-up, repeats, raw samples kept.

MLX is lazy: the function timed must call mx.eval (or otherwise force its result) itself, so the work
happens inside the timed region."""
from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Timing:
    samples: list[float] = field(default_factory=list)  # seconds per call
    warmup: int = 0


def timeit(fn, *, warmup: int = 2, repeats: int = 5) -> Timing:
    for _ in range(warmup):
        fn()
    t = Timing(warmup=warmup)
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        t.samples.append(time.perf_counter() - t0)
    return t
