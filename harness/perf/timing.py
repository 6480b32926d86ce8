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


class Stepper:
    """timeit_pipelined one step at a time, for a caller that times each step itself (pytest-benchmark's
    rounds): construction dispatches the first step and runs the warm-up; each `step()` queues the next step,
    waits for the current one and records the time since the previous completion; `close()` waits for the
    step still in flight (untimed)."""

    def __init__(self, dispatch, wait, warmup: int = 1):
        self.dispatch, self.wait = dispatch, wait
        self.timing = Timing(warmup=max(1, warmup))
        self.handle = dispatch()
        self.last = None
        for _ in range(self.timing.warmup):
            self._advance()

    def _advance(self) -> float:
        nxt = self.dispatch()
        self.wait(self.handle)
        now = time.perf_counter()
        dt = None if self.last is None else now - self.last
        self.last, self.handle = now, nxt
        return dt

    def step(self) -> None:
        self.timing.samples.append(self._advance())

    def close(self) -> Timing:
        self.wait(self.handle)
        return self.timing


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
