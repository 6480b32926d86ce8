"""What every check of the audit returns (a Finding), and the facts about a claim the checks share: its
hardware, the scale of its unit, and the folder paths in the evidence are shown relative to."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..numbers import fmt, num  # noqa: F401 (the checks' number helpers)
from ..resources import checkout_root

ROOT = checkout_root() or Path.cwd()  # paths in the audit are shown relative to this folder


@dataclass(frozen=True)
class Finding:
    verdict: str | None  # None: evidence that decides nothing
    basis: str           # feasibility | exact | measurement | seed's own numbers | public record | twin | none
    evidence: str


UNIT_SCALE = {"tokens/s": 1.0, "s": 1.0, "ms": 1e-3, "min": 60.0, "h": 3600.0, "bytes": 1.0, "GB": 1e9, "GiB": 2**30,
              "MB": 1e6, "nats": 1.0, "score": 1.0, "fraction": 1.0, "%": 0.01}


def claim_hardware(claim: dict) -> list[str]:
    hw = claim.get("hardware")
    return [] if not hw else [hw] if isinstance(hw, str) else list(hw)
