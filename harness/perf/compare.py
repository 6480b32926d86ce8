"""Compare two reports: only metrics whose environment and configuration match, with a rank test on the
samples to tell a real change from noise.

A metric regressed when its median moved in the bad direction by more than `threshold` (relative) AND the
two-sided Mann-Whitney U test on the two sample sets gives p < alpha. Without samples, or with too few for the
test to ever reach alpha (n=3 vs 3 cannot: its smallest p is 0.1), the threshold alone decides and the row
says so. The 95% interval of the ratio of medians (new/base) is a percentile bootstrap with a fixed seed.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

# Environment keys that decide whether two measurements are comparable (dotted paths into the fingerprint).
ENV_KEYS = ("cpu.model", "cpu.cores", "cpu.arch", "gpu", "mlx.backend", "mlx.device", "blas.name")
# Shown when they differ, but they do not block a comparison: a regression after an upgrade is the point.
ENV_INFO_KEYS = ("python", "mlx.version", "packages", "os.release", "ram_bytes")
# Config keys that name outputs or run identity, not what was measured.
VOLATILE_CONFIG = frozenset({"out", "output", "out_dir", "output_dir", "report", "created_at", "timestamp", "run_id"})


def flatten(d, prefix="") -> dict:
    out = {}
    if isinstance(d, dict):
        for k, v in d.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v:
                out.update(flatten(v, key))
            else:
                out[key] = v
    return out


def _pick(env: dict, key: str):
    cur = env
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    if key == "gpu" and isinstance(cur, list):  # names only: driver versions and memory are not the device
        return [g.get("name") for g in cur]
    return cur


@dataclass(frozen=True)
class Diff:
    key: str
    base: object
    new: object

    def __str__(self):
        return f"{self.key}: {self.base!r} -> {self.new!r}"


def _ignored(key: str, ignore) -> bool:
    return any(key == i or key.startswith(i + ".") for i in ignore)


def environment_diffs(base: dict, new: dict, ignore=()) -> tuple[list[Diff], list[Diff]]:
    """(blocking differences, informational differences) between two environment fingerprints."""
    ign = [i.removeprefix("environment.") for i in ignore]
    block = [Diff(k, _pick(base, k), _pick(new, k)) for k in ENV_KEYS
             if not _ignored(k, ign) and _pick(base, k) != _pick(new, k)]
    info = []
    for k in ENV_INFO_KEYS:
        fb, fn = flatten({k: _pick(base, k)}), flatten({k: _pick(new, k)})
        info += [Diff(x, fb.get(x), fn.get(x)) for x in sorted(set(fb) | set(fn))
                 if fb.get(x) != fn.get(x) and not _ignored(x, ign)]
    return block, info


def config_diffs(base: dict, new: dict, ignore=()) -> list[Diff]:
    ign = [i.removeprefix("config.") for i in ignore]
    fb, fn = flatten(base or {}), flatten(new or {})
    return [Diff(k, fb.get(k), fn.get(k)) for k in sorted(set(fb) | set(fn))
            if fb.get(k) != fn.get(k) and k.split(".")[0] not in VOLATILE_CONFIG and not _ignored(k, ign)]


# --- statistics ---------------------------------------------------------------------------------------

def min_p_value(n1: int, n2: int) -> float:
    """Smallest two-sided p the exact Mann-Whitney U test can give for sample sizes n1, n2 (no ties)."""
    return min(1.0, 2.0 / math.comb(n1 + n2, n1))


def mann_whitney_p(a, b) -> float:
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)


def ratio_ci(base, new, *, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap interval of median(new) / median(base)."""
    a, b = np.asarray(base, float), np.asarray(new, float)
    if len(a) < 2 or len(b) < 2:
        return None
    rng = np.random.default_rng(seed)
    ma = np.median(rng.choice(a, (n_boot, len(a))), axis=1)
    mb = np.median(rng.choice(b, (n_boot, len(b))), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = mb / ma
    r = r[np.isfinite(r)]
    if not len(r):
        return None
    lo, hi = np.quantile(r, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


# --- one metric ---------------------------------------------------------------------------------------

@dataclass
class Row:
    name: str
    labels: dict
    unit: str
    higher_is_better: bool | None
    base: float | None = None
    new: float | None = None
    change: float | None = None          # new/base - 1
    p_value: float | None = None
    ci: tuple | None = None              # of new/base
    n_base: int = 0
    n_new: int = 0
    status: str = "not compared"         # regression | improvement | unchanged | noise | changed | not compared
    note: str = ""

    @property
    def key(self) -> str:
        lab = ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        return f"{self.name}[{lab}]" if lab else self.name


def _key(m: dict) -> tuple:
    return m["name"], tuple(sorted((m.get("labels") or {}).items()))


def _centre(m: dict) -> tuple[float | None, list]:
    s = [float(x) for x in (m.get("samples") or []) if x is not None and math.isfinite(float(x))]
    if s:
        return float(np.median(s)), s
    return m.get("value"), []


def compare_metric(bm: dict, nm: dict, threshold: float, alpha: float) -> Row:
    row = Row(bm["name"], dict(bm.get("labels") or {}), bm.get("unit", ""), bm.get("higher_is_better"))
    if bm.get("unit") != nm.get("unit"):
        row.note = f"units differ ({bm.get('unit')} vs {nm.get('unit')})"
        return row
    if bm.get("higher_is_better") != nm.get("higher_is_better"):
        row.note = "higher_is_better differs between the reports"
        return row
    (row.base, sb), (row.new, sn) = _centre(bm), _centre(nm)
    row.n_base, row.n_new = len(sb), len(sn)
    if row.base is None or row.new is None:
        row.note = "no value in " + ("base" if row.base is None else "new")
        return row
    if row.base == 0:
        row.status = "unchanged" if row.new == 0 else "changed"
        row.note = "base is 0: no relative change"
        return row
    row.change = row.new / row.base - 1.0
    hib = row.higher_is_better
    tested = len(sb) >= 2 and len(sn) >= 2 and min_p_value(len(sb), len(sn)) < alpha
    if len(sb) >= 2 and len(sn) >= 2:
        row.ci = ratio_ci(sb, sn)
        if max(sb) == min(sb) and max(sn) == min(sn):
            row.p_value = 1.0 if sb[0] == sn[0] else 0.0  # constant samples: the test is undefined
        else:
            row.p_value = mann_whitney_p(sb, sn)
    if hib is None:
        row.status = "changed" if abs(row.change) > threshold else "unchanged"
        row.note = "no better direction: reported, never a regression"
        return row
    worse = row.change < -threshold if hib else row.change > threshold
    better = row.change > threshold if hib else row.change < -threshold
    if tested:
        significant = row.p_value < alpha
        if worse or better:
            row.status = ("regression" if worse else "improvement") if significant else "noise"
            if not significant:
                row.note = f"moved {row.change:+.1%} but p={row.p_value:.3g} >= {alpha}: not significant"
        else:
            row.status = "unchanged"
            if significant:
                row.note = f"significant (p={row.p_value:.3g}) but within the {threshold:.0%} threshold"
    else:
        row.status = "regression" if worse else "improvement" if better else "unchanged"
        row.note = ("no samples: threshold only" if not (sb and sn) else
                    f"too few samples for the rank test (n={len(sb)}+{len(sn)}, smallest p "
                    f"{min_p_value(max(len(sb), 1), max(len(sn), 1)):.2g}): threshold only")
    return row


# --- two reports --------------------------------------------------------------------------------------

@dataclass
class Comparison:
    rows: list = field(default_factory=list)
    env_diffs: list = field(default_factory=list)       # blocking
    env_info: list = field(default_factory=list)        # informational
    config_diffs: list = field(default_factory=list)    # blocking
    threshold: float = 0.05
    alpha: float = 0.05

    @property
    def comparable(self) -> bool:
        return not self.env_diffs and not self.config_diffs

    @property
    def regressions(self) -> list:
        return [r for r in self.rows if r.status == "regression"]

    def mismatch_message(self) -> str:
        parts = []
        if self.env_diffs:
            parts.append("environment differs in " + "; ".join(map(str, self.env_diffs)))
        if self.config_diffs:
            parts.append("configuration differs in " + "; ".join(map(str, self.config_diffs)))
        return ", and ".join(parts)

    def to_dict(self) -> dict:
        return {"comparable": self.comparable, "threshold": self.threshold, "alpha": self.alpha,
                "environment_differences": [asdict(d) for d in self.env_diffs],
                "environment_notes": [asdict(d) for d in self.env_info],
                "config_differences": [asdict(d) for d in self.config_diffs],
                "regressions": [r.key for r in self.regressions],
                "rows": [asdict(r) for r in self.rows]}


def compare_reports(base: dict, new: dict, *, threshold: float = 0.05, alpha: float = 0.05,
                    metrics=None, ignore=()) -> Comparison:
    """Compare every metric the two reports share (optionally only those matching `metrics`, fnmatch
    patterns). If environments or configurations differ in a blocking key, nothing is compared and the
    differences say why."""
    from fnmatch import fnmatch

    env_block, env_info = environment_diffs(base.get("environment") or {}, new.get("environment") or {}, ignore)
    cmp = Comparison(env_diffs=env_block, env_info=env_info,
                     config_diffs=config_diffs(base.get("config"), new.get("config"), ignore),
                     threshold=threshold, alpha=alpha)
    if not cmp.comparable:
        return cmp
    bmap = {_key(m): m for m in base.get("metrics", [])}
    nmap = {_key(m): m for m in new.get("metrics", [])}
    for k in list(bmap) + [k for k in nmap if k not in bmap]:
        if metrics and not any(fnmatch(k[0], p) for p in metrics):
            continue
        if k in bmap and k in nmap:
            cmp.rows.append(compare_metric(bmap[k], nmap[k], threshold, alpha))
        else:
            m = bmap.get(k) or nmap[k]
            cmp.rows.append(Row(m["name"], dict(m.get("labels") or {}), m.get("unit", ""), m.get("higher_is_better"),
                                note="only in " + ("base" if k in bmap else "new")))
    return cmp
