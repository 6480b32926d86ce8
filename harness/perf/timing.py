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


def timeit_pipelined(dispatch, wait, *, warmup: int = 2, repeats: int = 5) -> Timing:
    """Steps as a training loop runs them: step i+1 is queued (`dispatch()`, which returns a handle)
    before step i is waited for (`wait(handle)` blocks until it is done), so host work such as building
    the next step's graph overlaps the device's work. A sample is the time between two successive
    completions, i.e. the steady-state time per step. Every timed step has a successor in flight (one step
    more is dispatched and waited for untimed): reading a result back can lag while the next step runs
    (seen with MLX's CUDA and CPU backends, and with a full CUDA launch queue), and a last timed step
    without a successor would look shorter than the rest. Needs warmup >= 1."""
    warmup = max(1, warmup)
    t = Timing(warmup=warmup)
    total = warmup + repeats
    handle = dispatch()
    last = None
    for i in range(total):
        nxt = dispatch()
        wait(handle)
        now = time.perf_counter()
        if i >= warmup:
            t.samples.append(now - last)
        last = now
        handle = nxt
    wait(handle)
    return t
