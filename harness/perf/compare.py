"""Compare two reports: only metrics whose environment and configuration match, each metric given a verdict:
regression, improvement, unchanged or inconclusive.

A timing's verdict comes from the interval of new/base (harness.intervals): over per-run medians when the
reports carry several runs (`harness bench --runs`), else a block bootstrap of one run's consecutive steps.
A regression is shown when the change is worse than `threshold` AND the interval at 1 - alpha excludes no
change (asv's rule: a factor and significance); unchanged when the whole interval lies within +-threshold;
otherwise inconclusive, with about how many more runs a side would decide. A value without samples (peak
memory, a count) has nothing to test: the threshold alone decides and the row says so. Two eval reports of
the same problems are compared per task (harness.perf.compare_eval).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .row import VERDICTS, Row  # noqa: F401 (VERDICTS: the command's choices)

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


def ratio_ci(base, new, *, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap interval of median(new) / median(base), samples treated as independent."""
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

MAX_MORE = 1000  # beyond this many more repeats a side, "more repeats" stops being advice


def _key(m: dict) -> tuple:
    return m["name"], tuple(sorted((m.get("labels") or {}).items()))


def _finite(xs) -> list:
    return [float(x) for x in (xs or []) if x is not None and math.isfinite(float(x))]


def _centre(m: dict) -> tuple[float | None, list]:
    s = _finite(m.get("samples"))
    if s:
        return float(np.median(s)), s
    return m.get("value"), []


def ratio_test(bm: dict, nm: dict, alpha: float):
    """The test of new/base: per-run medians when both reports carry runs and one side has two or more,
    else a block bootstrap over the step samples (one run each: run-to-run variation unseen)."""
    from ..intervals import runs_ratio, steps_ratio

    rb, rn = _finite(bm.get("runs")), _finite(nm.get("runs"))
    if rb and rn:
        t = runs_ratio(rb, rn, alpha)
        if t is not None:
            return t
    return steps_ratio(_finite(bm.get("samples")), _finite(nm.get("samples")), alpha)


def _more(t, target: float) -> int | None:
    """Repeats a side needs, beyond those it has, for the interval's log half-width to shrink below `target`
    (half-width ~ 1/sqrt(n))."""
    n = max(min(t.n_base, t.n_new), 1)
    if target <= 1e-9:
        return None
    need = math.ceil(n * (t.log_half_width / target) ** 2) - n
    return max(1, need) if need <= MAX_MORE else None


def verdict(t, hib: bool, threshold: float) -> tuple[str, int | None, str]:
    """(verdict, more repeats a side, note) from a ratio test. A regression is shown when the change is worse
    than the threshold AND the interval excludes no change; unchanged when the whole interval lies within
    +-threshold; anything else is inconclusive."""
    lr = math.log(t.ratio) if t.ratio > 0 else -math.inf
    up, down = math.log(1 + threshold), math.log(max(1 - threshold, 1e-12))
    lo, hi = t.ci
    significant = lo > 1 or hi < 1
    beyond = lr > up or lr < down
    good = (lr > 0) == hib
    if beyond and significant:
        return ("improvement" if good else "regression"), None, ""
    if down <= math.log(max(lo, 1e-300)) and math.log(hi) <= up:
        return "unchanged", None, ("significant but within the threshold" if significant else "")
    target = abs(lr) if beyond else min(up - lr, lr - down)
    more = _more(t, target)
    unit = "runs" if t.method == "runs" else "timed steps"
    if more is None and target <= 1e-9:
        how = f"the estimate sits at the {threshold:.0%} threshold: more {unit} will hardly decide"
    elif more is None:
        how = f"more than {MAX_MORE} more {unit} a side would be needed"
    else:
        how = f"about {more} more {unit} a side would decide"
    why = "moved beyond the threshold but not significantly" if beyond else "the interval reaches past the threshold"
    return "inconclusive", more, f"{why}; {how}"


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
    t = ratio_test(bm, nm, alpha) if row.base > 0 and row.new > 0 else None
    if t is not None:
        row.method, row.ci, row.p_value = t.method, t.ci, t.p
        row.n_base, row.n_new = t.n_base, t.n_new
        row.change = t.ratio - 1.0
    if hib is None:
        row.status = "changed" if abs(row.change) > threshold else "unchanged"
        row.note = "no better direction: reported, never a regression"
        return row
    if t is None:
        # One value a side (peak memory, a count): nothing varies to test; the threshold alone decides.
        row.method = "threshold-only"
        worse = row.change < -threshold if hib else row.change > threshold
        better = row.change > threshold if hib else row.change < -threshold
        row.status = "regression" if worse else "improvement" if better else "unchanged"
        row.note = "one value a side, no samples: threshold only"
        return row
    row.status, row.more, row.note = verdict(t, hib, threshold)
    if t.method == "block-bootstrap":
        row.note = "; ".join(x for x in (row.note, "one run a side: run-to-run variation not measured "
                                                   "(harness bench --runs 5 measures it)") if x)
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
    notes: list = field(default_factory=list)
    eval_alpha: float | None = None     # of the paired pass@k tests, when the reports are evaluations

    @property
    def comparable(self) -> bool:
        return not self.env_diffs and not self.config_diffs

    @property
    def regressions(self) -> list:
        return [r for r in self.rows if r.status == "regression"]

    @property
    def inconclusive(self) -> list:
        return [r for r in self.rows if r.status == "inconclusive"]

    def mismatch_message(self) -> str:
        parts = []
        if self.env_diffs:
            parts.append("environment differs in " + "; ".join(map(str, self.env_diffs)))
        if self.config_diffs:
            parts.append("configuration differs in " + "; ".join(map(str, self.config_diffs)))
        return ", and ".join(parts)

    def to_dict(self) -> dict:
        return {"comparable": self.comparable, "threshold": self.threshold, "alpha": self.alpha,
                "eval_alpha": self.eval_alpha,
                "environment_differences": [asdict(d) for d in self.env_diffs],
                "environment_notes": [asdict(d) for d in self.env_info],
                "config_differences": [asdict(d) for d in self.config_diffs], "notes": self.notes,
                "regressions": [r.key for r in self.regressions],
                "inconclusive": [r.key for r in self.inconclusive],
                "rows": [asdict(r) for r in self.rows]}


SAMPLING_PREFIX = "eval.sampling_"
# Of two eval reports compared on their sampling speed, the config keys that change what was sampled (the same
# tasks and settings); the model, the decoder, the device and paths may differ: that is what such a comparison is for
SAMPLING_SAME = ("sampling", "seed", "limit", "tasks.content_hash", "tasks.tasks", "tasks.name", "tasks.version",
                 "generation.rows_per_call")


def split_sampling_diffs(diffs: list[Diff]) -> tuple[list[Diff], list[Diff]]:
    """(blocking, noted) config differences of two eval reports compared on their sampling speed."""
    block = [d for d in diffs if any(d.key == k or d.key.startswith(k + ".") for k in SAMPLING_SAME)]
    return block, [d for d in diffs if d not in block]


# Timings: a bench report carries three (train, decode, first token), so each is tested at 1% to keep false alarms
# rare (asv uses 0.2%); an eval comparison is one paired test on pass@k, at 5%.
TIMING_ALPHA, EVAL_ALPHA = 0.01, 0.05


def compare_reports(base: dict, new: dict, *, threshold: float = 0.05, alpha: float | None = None,
                    metrics=None, ignore=(), names=("BASE", "NEW")) -> Comparison:
    """Compare every metric the two reports share (optionally only those matching `metrics`, fnmatch
    patterns). If environments or configurations differ in a blocking key, nothing is compared and the
    differences say why. Two eval reports are compared per task on pass@k (harness.perf.compare_eval; they must
    cover the same problems, else ProblemSetMismatch); their configurations (the model, the samples) are
    expected to differ and are only noted."""
    from fnmatch import fnmatch

    from ..report import scored
    from .compare_eval import check_same_problems, is_eval_pair, paired_rows

    env_block, env_info = environment_diffs(base.get("environment") or {}, new.get("environment") or {}, ignore)
    cfg_diffs = config_diffs(base.get("config"), new.get("config"), ignore)
    paired = is_eval_pair(base, new)
    sampling = paired and not (scored(base) and scored(new))
    notes = []
    if sampling:  # a side was never scored (--generate-only): what there is to compare is how fast it sampled
        paired = False
        cfg_diffs, noted = split_sampling_diffs(cfg_diffs)
        metrics = [p for p in metrics or [f"{SAMPLING_PREFIX}*"] if p.startswith(SAMPLING_PREFIX)] \
            or [f"{SAMPLING_PREFIX}*"]
        notes.append("an eval report that was not scored (--generate-only): only the sampling metrics are compared; "
                     "the per-call ones are tested, one value a side is reported, not gated")
        if noted:
            notes.append("configuration also differs in " + "; ".join(map(str, noted))
                         + " (compared anyway: a sampling comparison measures such a change)")
    if paired:
        notes = check_same_problems(base, new, *names)
        env_info, env_block, cfg_diffs = env_block + env_info, [], []
    eval_alpha = alpha if alpha is not None else EVAL_ALPHA
    alpha = alpha if alpha is not None else TIMING_ALPHA
    cmp = Comparison(env_diffs=env_block, env_info=env_info, config_diffs=cfg_diffs,
                     threshold=threshold, alpha=alpha, notes=notes, eval_alpha=eval_alpha if paired else None)
    if not cmp.comparable:
        return cmp
    want = lambda name: not metrics or any(fnmatch(name, p) for p in metrics)  # noqa: E731
    done = set()
    if paired:
        ks = sorted({int(m["name"].split("@")[1]) for m in base.get("metrics", [])
                     if m["name"].startswith("eval.pass@") and m["name"].split("@")[1].isdigit()})
        for row in paired_rows(base, new, ks, eval_alpha, threshold):
            if want(row.name):
                cmp.rows.append(row)
            done.add((row.name, ()))
    bmap = {_key(m): m for m in base.get("metrics", [])}
    nmap = {_key(m): m for m in new.get("metrics", [])}
    for k in list(bmap) + [k for k in nmap if k not in bmap]:
        if k in done or not want(k[0]):
            continue
        if k in bmap and k in nmap:
            row = compare_metric(bmap[k], nmap[k], threshold, alpha)
            if paired and (row.method == "threshold-only" or row.status in ("regression", "improvement")):
                # Of two evals only pass@k is gated; the rest (execution times, which follow the machine's load,
                # status counts) is reported
                row.status = "unchanged" if row.status == "unchanged" else "changed"
                row.note = "reported, not gated: of two evals only pass@k is (the paired test)"
            elif sampling and row.method == "threshold-only":
                row.status = "unchanged" if row.status == "unchanged" else "changed"
                row.note = "one value a side: reported, not gated (the per-call metrics are tested)"
            cmp.rows.append(row)
        else:
            m = bmap.get(k) or nmap[k]
            cmp.rows.append(Row(m["name"], dict(m.get("labels") or {}), m.get("unit", ""), m.get("higher_is_better"),
                                note="only in " + ("base" if k in bmap else "new")))
    return cmp
