"""One compared metric: its base and new values, the test that decided and the verdict, shared by the
comparison of timings (compare.py) and of two evaluations task by task (compare_eval.py)."""
from __future__ import annotations

from dataclasses import dataclass

VERDICTS = ("regression", "improvement", "unchanged", "inconclusive")


@dataclass
class Row:
    name: str
    labels: dict
    unit: str
    higher_is_better: bool | None
    base: float | None = None
    new: float | None = None
    change: float | None = None          # new/base - 1 (of the tested estimate when there is a test)
    p_value: float | None = None
    ci: tuple | None = None              # of new/base, at 1 - alpha
    n_base: int = 0                      # units of replication: runs (method "runs") or steps
    n_new: int = 0
    method: str = "none"                 # runs | block-bootstrap | threshold-only | none
    more: int | None = None              # inconclusive: about how many more runs (or steps) a side would decide
    status: str = "not compared"         # regression | improvement | unchanged | inconclusive | changed | not compared
    note: str = ""

    @property
    def key(self) -> str:
        lab = ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        return f"{self.name}[{lab}]" if lab else self.name
