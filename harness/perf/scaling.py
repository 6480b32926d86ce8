"""Data-parallel scaling from train reports: the same `harness train` run on 1 process and on N (MLX data
parallel, the same global batch), compared for throughput and for the losses they produced.

Grouping rule (what must be equal for a fair comparison): two train reports belong to one group when their
`config` is equal except for the keys in IGNORED_CONFIG -- `world_size` (what varies), and the keys that name
the run's own output or where it started from: `out`, `init`, `resume`, plus compare's VOLATILE_CONFIG
(`output`, `out_dir`, `output_dir`, `report`, `created_at`, `timestamp`, `run_id`). Everything else counts,
`data` (the corpus path) included, and so does a key present in one config and absent from the other (a
report from another harness version is its own group). The hardware must match too: the MLX backend and the
GPU model names (the CPU model on the CPU backend), not the number of GPUs the host had.

Within a group the world_size=1 report is the baseline; a group with N > 1 reports but no baseline, or with
two reports of one world size, is an error. For each N > 1 (strong scaling: the global batch is fixed):

- speedup = median tokens/s (N) / median tokens/s (1), from `train.tokens_per_s` (per optimizer step, all
  processes together); efficiency = speedup / N;
- their 95% interval: a percentile bootstrap of the ratio of the two medians over the per-step samples (2000
  resamples, seed 0: compare.ratio_ci), divided by N for the efficiency;
- loss agreement: the largest |loss_N - loss_1| / |loss_1| over the steps both runs logged
  (`details.losses`), and the same over `details.val_losses`. Steps missing on one side are left out; no
  common training step at all is an error (no common validation step only leaves that figure empty).

Global batch = batch_size x accum: sequences per optimizer step, summed over processes.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .compare import VOLATILE_CONFIG, config_diffs, ratio_ci
from ..environment import hardware_label
from ..errors import UsageError

IGNORED_CONFIG = frozenset({"world_size", "out", "init", "resume"}) | VOLATILE_CONFIG
CI_METHOD = ("95% percentile bootstrap of the ratio of median tokens/s (per-step samples, 2000 resamples, "
             "seed 0); efficiency interval = speedup interval / N")


def world_size(report: dict) -> int:
    """Reports from before data parallelism carry no world_size: they ran as one process."""
    return int((report.get("config") or {}).get("world_size") or 1)


def global_batch(config: dict) -> int | None:
    b = config.get("batch_size")
    return None if b is None else int(b) * int(config.get("accum") or 1)


def comparable_config(config: dict) -> dict:
    return {k: v for k, v in (config or {}).items() if k not in IGNORED_CONFIG}


def hardware_key(env: dict) -> tuple:
    backend = (env.get("mlx") or {}).get("backend")
    gpus = tuple(sorted({g.get("name") for g in env.get("gpu") or [] if isinstance(g, dict)}))
    if backend == "cpu" or not gpus:
        return backend, (env.get("cpu") or {}).get("model")
    return backend, gpus


def group_key(report: dict) -> str:
    return json.dumps([comparable_config(report.get("config")), hardware_key(report.get("environment") or {})],
                      sort_keys=True, default=str)


def rel_diff(new: float, base: float) -> float:
    if not (math.isfinite(new) and math.isfinite(base)):
        return math.inf
    if base == 0:
        return 0.0 if new == 0 else math.inf
    return abs(new - base) / abs(base)


@dataclass
class Agreement:
    max_rel_diff: float | None  # None: no common step; inf: a non-finite loss at a common step
    at_step: int | None
    common_steps: int


def loss_agreement(base: list, new: list) -> Agreement:
    """Largest relative difference of `new` from `base` over the steps both list ([[step, loss], ...])."""
    b = {int(s): math.nan if v is None else float(v) for s, v in base or []}
    n = {int(s): math.nan if v is None else float(v) for s, v in new or []}
    common = sorted(set(b) & set(n))
    if not common:
        return Agreement(None, None, 0)
    worst = max(common, key=lambda s: rel_diff(n[s], b[s]))
    return Agreement(rel_diff(n[worst], b[worst]), worst, len(common))


def tokens_per_s(report: dict) -> tuple[float | None, list[float]]:
    """(median, per-step samples) of train.tokens_per_s; the median of the samples when there are any."""
    import statistics

    m = next((m for m in report.get("metrics", []) if m.get("name") == "train.tokens_per_s"), None)
    if m is None:
        return None, []
    s = [float(x) for x in m.get("samples") or [] if x is not None and math.isfinite(float(x))]
    return (statistics.median(s) if s else m.get("value")), s


@dataclass
class Point:
    """One run of a group: the baseline (world_size 1, no ratios) or an N-process run against it."""
    path: str
    world_size: int
    tokens_per_s: float
    samples: list = field(repr=False)
    speedup: float | None = None
    speedup_ci: tuple | None = None
    efficiency: float | None = None
    efficiency_ci: tuple | None = None
    loss: Agreement | None = None
    val_loss: Agreement | None = None
    status: str = "ok"  # the train report's status
    git: dict | None = None
    created_at: str | None = None
    environment: dict | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("samples")
        d.pop("environment")
        for k in ("loss", "val_loss"):  # JSON has no infinity: a non-finite loss reads as None + a flag
            if d[k] and d[k]["max_rel_diff"] is not None and not math.isfinite(d[k]["max_rel_diff"]):
                d[k].update(max_rel_diff=None, non_finite=True)
        return d


@dataclass
class Group:
    preset: str
    global_batch: int | None
    seq_len: int | None
    dtype: str | None
    hardware: str
    points: list  # [baseline, then N > 1 by world size]

    @property
    def labels(self) -> dict:
        return {"global_batch": self.global_batch, "seq_len": self.seq_len, "preset": self.preset}

    def to_dict(self) -> dict:
        return {"preset": self.preset, "global_batch": self.global_batch, "seq_len": self.seq_len,
                "dtype": self.dtype, "hardware": self.hardware, "points": [p.to_dict() for p in self.points]}


def _describe(report: dict) -> str:
    c = report.get("config") or {}
    return (f"preset {c.get('preset', '?')}, global batch {global_batch(c)}, seq {c.get('seq_len')}, "
            f"{c.get('dtype', '?')}, on {hardware_label(report.get('environment') or {})}")


def _point(path: str, r: dict) -> Point:
    tps, samples = tokens_per_s(r)
    if tps is None or not tps > 0:
        raise UsageError(f"{path} has no train.tokens_per_s value (no timed steps after the warm-up steps); "
                         "re-run `harness train` with more --steps")
    return Point(path, world_size(r), float(tps), samples, status=r.get("status", "?"), git=r.get("git"),
                 created_at=r.get("created_at"), environment=r.get("environment"))


def _missing_baseline(members: list, reports: list) -> UsageError:
    path, r = members[0]
    ones = [(p, q) for p, q in reports if world_size(q) == 1]
    msg = (f"no world_size=1 train report of the same configuration as {path} ({_describe(r)}) to use as the "
           "baseline; pass the report of the same `harness train` run on one process")
    if ones:  # say what keeps the nearest single-process report out of the group
        def diffs(q):
            d = [str(x) for x in config_diffs(q.get("config"), r.get("config"), ignore=IGNORED_CONFIG)]
            if hardware_key(q.get("environment") or {}) != hardware_key(r.get("environment") or {}):
                d.append(f"hardware: {hardware_label(q.get('environment') or {})!r} -> "
                         f"{hardware_label(r.get('environment') or {})!r}")
            return d
        p1, q1 = min(ones, key=lambda pq: len(diffs(pq[1])))
        d = diffs(q1)
        msg += f" ({p1} differs in {'; '.join(d[:4])}{f' and {len(d) - 4} more' if len(d) > 4 else ''})"
    return UsageError(msg)


def analyse(reports: list[tuple[str | Path, dict]]) -> list[Group]:
    """Scaling groups of train reports (see the module docstring). Groups of single-process runs only are
    not scaling measurements and are left out; UsageError when no group has an N > 1 run, when one has no
    baseline or two runs of one world size, or when a run shares no training step with its baseline."""
    reports = [(str(p), r) for p, r in reports]
    for p, r in reports:
        if r.get("kind") != "train":
            raise UsageError(f"{p} is a {r.get('kind')!r} report, not a train report; pass the reports that "
                             "`harness train` wrote (RUN/report.json) on 1 and on N processes")
    seen, unique = set(), []
    for p, r in reports:  # a report copied elsewhere (runs/X/report.json -> results/) counts once
        k = json.dumps(r, sort_keys=True)
        if k not in seen:
            seen.add(k)
            unique.append((p, r))
    groups: dict[str, list] = {}
    for p, r in unique:
        groups.setdefault(group_key(r), []).append((p, r))
    out = []
    for members in groups.values():
        if all(world_size(r) == 1 for _, r in members):
            continue
        by_ws: dict[int, tuple] = {}
        for p, r in members:
            ws = world_size(r)
            if ws in by_ws:
                raise UsageError(f"{by_ws[ws][0]} and {p} are both world_size={ws} runs of the same configuration; "
                                 "pass only one of them")
            by_ws[ws] = (p, r)
        if 1 not in by_ws:
            raise _missing_baseline(members, unique)
        p1, r1 = by_ws[1]
        base = _point(p1, r1)
        points = [base]
        for ws in sorted(by_ws)[1:]:
            p, r = by_ws[ws]
            pt = _point(p, r)
            pt.speedup = pt.tokens_per_s / base.tokens_per_s
            pt.efficiency = pt.speedup / ws
            ci = ratio_ci(base.samples, pt.samples)
            if ci:
                pt.speedup_ci = ci
                pt.efficiency_ci = (ci[0] / ws, ci[1] / ws)
            d1, dn = r1.get("details") or {}, r.get("details") or {}
            pt.loss = loss_agreement(d1.get("losses"), dn.get("losses"))
            if pt.loss.common_steps == 0:
                raise UsageError(f"{p} and its baseline {p1} share no logged training step (details.losses: "
                                 f"{len(dn.get('losses') or [])} and {len(d1.get('losses') or [])} steps); "
                                 "compare runs of the same --steps, both logging every step")
            pt.val_loss = loss_agreement(d1.get("val_losses"), dn.get("val_losses"))
            points.append(pt)
        c = r1.get("config") or {}
        out.append(Group(str(c.get("preset", "?")), global_batch(c), c.get("seq_len"), c.get("dtype"),
                         hardware_label(by_ws[max(by_ws)][1].get("environment") or {}), points))
    if not out:
        raise UsageError("no multi-process train report (config.world_size > 1) among the inputs; run the same "
                         "`harness train` under `mlx.launch -n N` and pass both reports")
    return sorted(out, key=lambda g: (g.preset, g.global_batch or 0, g.seq_len or 0, str(g.dtype)))


def point_failures(g: Group, p: Point, min_efficiency: float | None = None,
                   loss_rtol: float | None = 0.01) -> list[str]:
    """What the gates reject in one N-process run, one line each (nothing for the baseline)."""
    if p.world_size == 1:
        return []
    out = []
    where = f"{g.preset} global batch {g.global_batch} x {g.seq_len} on {p.world_size} processes"
    if min_efficiency is not None and p.efficiency < min_efficiency:
        out.append(f"{where}: efficiency {p.efficiency:.3f} < {min_efficiency}")
    if loss_rtol is not None:
        for name, a in (("loss", p.loss), ("val loss", p.val_loss)):
            if a and a.max_rel_diff is not None and not a.max_rel_diff <= loss_rtol:
                out.append(f"{where}: {name} differs from the 1-process run's by {a.max_rel_diff:.3g} relative "
                           f"at step {a.at_step} (> {loss_rtol})")
    return out


def failures(groups: list[Group], min_efficiency: float | None = None, loss_rtol: float | None = 0.01) -> list[str]:
    """What the gates reject across all groups, one line each."""
    return [f for g in groups for p in g.points for f in point_failures(g, p, min_efficiency, loss_rtol)]


def _finite(x):
    return x if x is not None and math.isfinite(x) else None


def metrics_of(groups: list[Group]) -> list[dict]:
    """A scaling report's metrics: scaling.tokens_per_s per world size (1 included, with the train report's
    samples), scaling.speedup, scaling.efficiency, scaling.loss_max_rel_diff and
    scaling.val_loss_max_rel_diff per N > 1; labels world_size, global_batch, seq_len, preset (and dtype, and
    a group number, only where two groups would otherwise share labels). Speedup and efficiency carry their
    95% interval as `interval` [low, high]."""
    from ..report import metric

    base_labels = [g.labels for g in groups]
    dup_dtype = {json.dumps(lab, sort_keys=True) for lab in base_labels if base_labels.count(lab) > 1}
    labs = [{**g.labels, "dtype": g.dtype} if json.dumps(g.labels, sort_keys=True) in dup_dtype else g.labels
            for g in groups]
    labs = [{**lab, "group": i + 1} if labs.count(lab) > 1 else lab for i, lab in enumerate(labs)]
    out = []
    for g, lab in zip(groups, labs):
        for p in g.points:
            L = {"world_size": p.world_size, **lab}
            out.append(metric("scaling.tokens_per_s", None if p.samples else p.tokens_per_s, "tokens/s", True,
                              samples=p.samples or None, labels=L,
                              note=f"train.tokens_per_s of {p.path} (median per optimizer step, all processes)"))
            if p.world_size == 1:
                continue
            ci = (lambda c: f"; 95% interval [{c[0]:.3f}, {c[1]:.3f}] in `interval` (config.interval says how)" if c else
                  "; no interval (fewer than 2 samples on a side)")
            out.append(metric("scaling.speedup", p.speedup, "x", True, labels=L,
                              interval=list(p.speedup_ci) if p.speedup_ci else None,
                              note=f"median tokens/s over the 1-process run's{ci(p.speedup_ci)}"))
            out.append(metric("scaling.efficiency", p.efficiency, "fraction", True, labels=L,
                              interval=list(p.efficiency_ci) if p.efficiency_ci else None,
                              note=f"speedup / {p.world_size} (same global batch){ci(p.efficiency_ci)}"))
            for name, a, what in (("scaling.loss_max_rel_diff", p.loss, "training"),
                                  ("scaling.val_loss_max_rel_diff", p.val_loss, "validation")):
                note = (f"max |loss_N - loss_1| / |loss_1| over {a.common_steps} common {what} steps, at step "
                        f"{a.at_step}" if a.common_steps else f"no common {what} step")
                if a.max_rel_diff is not None and not math.isfinite(a.max_rel_diff):
                    note += " (a loss was not finite)"
                out.append(metric(name, _finite(a.max_rel_diff), "relative", False, labels=L, note=note))
    return out


def make_scaling_report(groups: list[Group], min_efficiency: float | None = None,
                        loss_rtol: float | None = 0.01) -> dict:
    """The `scaling` report: metrics_of(groups); status failed when a gate fails; details name every input
    report with its git commit; the environment is that of the run with the most processes (the N-GPU
    machine: a 1-GPU run on the same host lists the same GPUs) and details.environment_from says which."""
    from ..report import make_report

    fails = failures(groups, min_efficiency, loss_rtol)
    env_pt = max((p for g in groups for p in g.points), key=lambda p: p.world_size)
    inputs = [{"path": p.path, "world_size": p.world_size, "git_commit": (p.git or {}).get("commit"),
               "git_dirty": (p.git or {}).get("dirty"), "created_at": p.created_at, "status": p.status}
              for g in groups for p in g.points]
    rep = make_report("scaling", {"min_efficiency": min_efficiency, "loss_rtol": loss_rtol,
                                  "ignored_config_keys": sorted(IGNORED_CONFIG), "interval": CI_METHOD},
                      metrics_of(groups), "failed" if fails else "ok",
                      details={"inputs": inputs, "environment_from": env_pt.path,
                               "environment_note": f"environment is that of {env_pt.path}, the run with the most "
                                                   f"processes ({env_pt.world_size})",
                               "groups": [g.to_dict() for g in groups], "failures": fails},
                      environment=env_pt.environment)
    return json.loads(json.dumps(rep, default=list))
