"""harness.perf.timing.timeit_pipelined against a simulated device whose read-back lags while the next step
runs (what MLX on CUDA and on the CPU did: results/gpu/NOTES.md). Every sample must be the step time."""
from __future__ import annotations

import pytest

from harness.perf import timing


class LaggingDevice:
    """Steps of `step_s` seconds run back to back; reading step i back returns 3/4 of the way into step i+1
    when step i+1 is queued, at step i's end otherwise. The host itself takes no time."""

    def __init__(self, step_s: float):
        self.step_s, self.now, self.done = step_s, 0.0, []

    def clock(self) -> float:
        return self.now

    def dispatch(self) -> int:
        start = max(self.now, self.done[-1] if self.done else 0.0)
        self.done.append(start + self.step_s)
        return len(self.done) - 1

    def wait(self, i: int) -> None:
        lag = 0.75 * self.step_s if i + 1 < len(self.done) else 0.0
        self.now = max(self.now, self.done[i] + lag)


@pytest.mark.parametrize("warmup,repeats", [(1, 1), (2, 5), (0, 3)])
def test_every_sample_is_one_step_despite_the_read_back_lag(monkeypatch, warmup, repeats):
    dev = LaggingDevice(0.1)
    monkeypatch.setattr(timing.time, "perf_counter", dev.clock)
    t = timing.timeit_pipelined(dev.dispatch, dev.wait, warmup=warmup, repeats=repeats)
    assert len(t.samples) == repeats
    assert t.samples == pytest.approx([0.1] * repeats)
    assert len(dev.done) == max(1, warmup) + repeats + 1  # one untimed step keeps the last timed one lagged


def test_stepper_times_one_pipelined_step_per_call():
    from harness.perf.timing import Stepper

    log = []
    count = iter(range(100))
    st = Stepper(lambda: log.append(("d", n := next(count))) or n, lambda h: log.append(("w", h)), warmup=2)
    assert log == [("d", 0), ("d", 1), ("w", 0), ("d", 2), ("w", 1)]  # first step, then two warm-up steps
    for _ in range(3):
        st.step()
    t = st.close()
    assert len(t.samples) == 3 and all(s >= 0 for s in t.samples) and t.warmup == 2
    assert log[-1] == ("w", 5) and log[-2] == ("w", 4)  # the step in flight is waited for, untimed
