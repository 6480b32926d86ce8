"""Intervals and tests behind every "how sure" in the harness: the ratio of two timings, a suite score, and
a paired difference of two evaluations.

Timed steps of one run are consecutive, not independent draws: a slow stretch of the machine slows several
steps in a row, and a whole run can sit above or below the next one (seen: 1,558, 1,753 and 1,553 tok/s
from three identical runs on a 2-core VM). So two timings are compared at the level of runs when both sides
have several (Welch's t on the logarithms of the per-run medians), and otherwise by a moving-block bootstrap
of the step samples (Kuensch 1989, blocks of about n^(1/3) consecutive steps), which keeps the correlation
of neighbouring steps but cannot see run-to-run variation and says so.

Evaluations: the suite's pass@k is a mean over tasks, so its interval is a percentile bootstrap over tasks
(seeded). Two evaluations of the same problems are paired per task: with one sample per task, McNemar's
exact test on the discordant tasks (binomial, p = 1/2); with several, a paired bootstrap over tasks of the
difference in per-task pass@1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SEED = 0
N_BOOT = 4000


@dataclass(frozen=True)
class RatioTest:
    ratio: float                  # new / base, the point estimate
    ci: tuple[float, float]       # of new / base, at 1 - alpha
    p: float                      # two-sided, H0: ratio = 1
    method: str                   # "runs" | "block-bootstrap"
    n_base: int                   # units of replication: runs, or steps
    n_new: int
    log_half_width: float         # half the width of the interval of log(ratio): what more repeats would shrink


def _clean(xs) -> np.ndarray:
    a = np.asarray([float(x) for x in xs if x is not None], float)
    return a[np.isfinite(a) & (a > 0)]


def runs_ratio(base_runs, new_runs, alpha: float = 0.05) -> RatioTest | None:
    """Ratio of geometric means of per-run medians with Welch's t interval on their logarithms. A side with
    one run borrows the other side's spread (Student's t with that side's degrees of freedom). None when
    neither side has two runs."""
    from scipy import stats as st

    a, b = np.log(_clean(base_runs)), np.log(_clean(new_runs))
    if len(a) < 1 or len(b) < 1 or (len(a) < 2 and len(b) < 2):
        return None
    va = a.var(ddof=1) if len(a) > 1 else None
    vb = b.var(ddof=1) if len(b) > 1 else None
    if va is None:
        va, df = vb, len(b) - 1
    elif vb is None:
        vb, df = va, len(a) - 1
    else:
        num = (va / len(a) + vb / len(b)) ** 2
        den = (va / len(a)) ** 2 / (len(a) - 1) + (vb / len(b)) ** 2 / (len(b) - 1)
        df = num / den if den > 0 else len(a) + len(b) - 2
    se = math.sqrt(va / len(a) + vb / len(b))
    d = float(b.mean() - a.mean())
    if se == 0:
        p = 1.0 if d == 0 else 0.0
        hw = 0.0
    else:
        p = float(2 * st.t.sf(abs(d) / se, df))
        hw = float(st.t.ppf(1 - alpha / 2, df) * se)
    return RatioTest(math.exp(d), (math.exp(d - hw), math.exp(d + hw)), p, "runs", len(a), len(b), hw)


def block_length(n: int) -> int:
    return max(1, round(n ** (1 / 3)))


def block_resample(x: np.ndarray, n_boot: int, rng) -> np.ndarray:
    """(n_boot, len(x)) moving-block bootstrap resamples of the sequence x."""
    n = len(x)
    b = block_length(n)
    k = -(-n // b)
    starts = rng.integers(0, n - b + 1, size=(n_boot, k))
    idx = (starts[:, :, None] + np.arange(b)).reshape(n_boot, k * b)[:, :n]
    return x[idx]


def steps_ratio(base, new, alpha: float = 0.05, n_boot: int = N_BOOT, seed: int = SEED) -> RatioTest | None:
    """Ratio of medians of two runs' step samples with a moving-block bootstrap interval (percentile on the
    log scale) and p = twice the smaller tail of the bootstrap distribution at 1. None below 2 steps a side."""
    a, b = _clean(base), _clean(new)
    if len(a) < 2 or len(b) < 2:
        return None
    rng = np.random.default_rng(seed)
    la = np.log(np.median(block_resample(a, n_boot, rng), axis=1))
    lb = np.log(np.median(block_resample(b, n_boot, rng), axis=1))
    lr = lb - la
    d = float(np.log(np.median(b)) - np.log(np.median(a)))
    lo, hi = np.quantile(lr, [alpha / 2, 1 - alpha / 2])
    if np.all(lr == lr[0]):
        p = 1.0 if lr[0] == 0 else 0.0
    else:
        p = float(min(1.0, 2 * min(np.mean(lr <= 0), np.mean(lr >= 0))))
    return RatioTest(math.exp(d), (math.exp(lo), math.exp(hi)), p, "block-bootstrap", len(a), len(b),
                     float((hi - lo) / 2))


def median_ci(samples, runs=None, level: float = 0.95, n_boot: int = N_BOOT, seed: int = SEED):
    """95% interval of a timing's typical value: over per-run medians (t interval of their log mean) when
    there are several runs, else a moving-block bootstrap of the median of the steps. None when too few."""
    from scipy import stats as st

    alpha = 1 - level
    r = _clean(runs or [])
    if len(r) >= 2:
        lr = np.log(r)
        se = lr.std(ddof=1) / math.sqrt(len(lr))
        hw = float(st.t.ppf(1 - alpha / 2, len(lr) - 1) * se)
        return [float(math.exp(lr.mean() - hw)), float(math.exp(lr.mean() + hw))]
    x = _clean(samples)
    if len(x) < 2:
        return None
    m = np.median(block_resample(x, n_boot, np.random.default_rng(seed)), axis=1)
    lo, hi = np.quantile(m, [alpha / 2, 1 - alpha / 2])
    return [float(lo), float(hi)]


def bootstrap_mean_ci(values, level: float = 0.95, n_boot: int = N_BOOT, seed: int = SEED):
    """Percentile bootstrap interval of the mean of per-task values (resampling tasks)."""
    v = np.asarray(values, float)
    if len(v) == 0:
        return None
    if len(v) == 1 or np.all(v == v[0]):
        return [float(v.mean()), float(v.mean())]
    rng = np.random.default_rng(seed)
    m = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    lo, hi = np.quantile(m, [(1 - level) / 2, 1 - (1 - level) / 2])
    return [float(lo), float(hi)]


@dataclass(frozen=True)
class PairedTest:
    diff: float                   # mean over tasks of (new - base) per-task pass@1
    ci: tuple[float, float]
    p: float
    method: str
    n_tasks: int
    base_only: int = 0            # McNemar: tasks passed by base only
    new_only: int = 0


def mcnemar_exact(base: list[bool], new: list[bool], alpha: float = 0.05) -> PairedTest:
    """McNemar's exact test: among tasks where the two disagree, is 'new only' as likely as 'base only'?
    The interval of the difference in pass rates is Wald's with a continuity correction on the paired
    proportions (Fleiss, Statistical Methods for Rates and Proportions, 3rd ed., 10.1)."""
    from scipy.stats import binomtest, norm

    n = len(base)
    b = sum(x and not y for x, y in zip(base, new))   # base passed, new failed
    c = sum(y and not x for x, y in zip(base, new))
    p = float(binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0
    d = (c - b) / n if n else 0.0
    if n:
        se = math.sqrt(max(b + c - (c - b) ** 2 / n, 0.0)) / n
        hw = norm.ppf(1 - alpha / 2) * se + 1 / n
    else:
        hw = 0.0
    return PairedTest(d, (max(-1.0, d - hw), min(1.0, d + hw)), p, "mcnemar-exact", n, b, c)


def paired_bootstrap(base: list[float], new: list[float], alpha: float = 0.05, n_boot: int = N_BOOT,
                     seed: int = SEED) -> PairedTest:
    """Paired bootstrap over tasks of mean(new - base) per-task pass@1; p = twice the smaller tail at 0."""
    d = np.asarray(new, float) - np.asarray(base, float)
    n = len(d)
    if n == 0 or np.all(d == d[0]):
        v = float(d[0]) if n else 0.0
        return PairedTest(v, (v, v), 1.0 if v == 0 else 0.0, "paired-bootstrap", n)
    rng = np.random.default_rng(seed)
    m = d[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    lo, hi = np.quantile(m, [alpha / 2, 1 - alpha / 2])
    p = float(min(1.0, 2 * min(np.mean(m <= 0), np.mean(m >= 0))))
    return PairedTest(float(d.mean()), (float(lo), float(hi)), p, "paired-bootstrap", n)
