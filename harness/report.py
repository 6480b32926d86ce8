"""One writer and one validator for every report (schema: harness/data/report.schema.json, version 1).

A report says what produced it (harness version, git commit, environment), how it was measured
(warm-up, repeats) and keeps the raw samples next to their summary statistics."""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import statistics
from functools import lru_cache
from pathlib import Path

from reference.files import atomic_write_text  # noqa: F401 (the commands write through it)

from .errors import UsageError
from .resources import data_file

SCHEMA_VERSION = 1
SCHEMA_PATH = data_file("report.schema.json")


@lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def stats(samples: list[float]) -> dict:
    xs = sorted(float(x) for x in samples)
    n = len(xs)
    q = statistics.quantiles(xs, n=4) if n >= 2 else [xs[0]] * 3
    return {"n": n, "mean": statistics.fmean(xs), "median": statistics.median(xs), "min": xs[0], "max": xs[-1],
            "stdev": statistics.stdev(xs) if n >= 2 else 0.0, "iqr": q[2] - q[0]}


def metric(name: str, value, unit: str, higher_is_better: bool | None, samples=None, **extra) -> dict:
    """A metric; with `samples` its value defaults to their median and stats are attached."""
    m = {"name": name, "unit": unit, "higher_is_better": higher_is_better}
    if samples is not None:
        samples = [float(s) for s in samples]
        m["samples"] = samples
        if samples:
            m["stats"] = stats(samples)
            if value is None:
                value = m["stats"]["median"]
    if value is not None:
        value = float(value)
        if not math.isfinite(value):
            value = None
    m["value"] = value
    m.update({k: v for k, v in extra.items() if v is not None})
    return m


def merge_runs(runs: list[list[dict]]) -> list[dict]:
    """One metric list from several runs of the same measurement: samples pooled (value = their median),
    `runs` = each run's median (or value), `stats.ci95` over the runs when there are several, else a block
    bootstrap of the steps (harness.intervals.median_ci)."""
    from .intervals import median_ci

    order, groups = [], {}
    for ms in runs:
        for m in ms:
            k = (m["name"], json.dumps(m.get("labels") or {}, sort_keys=True, default=str))
            if k not in groups:
                order.append(k)
                groups[k] = []
            groups[k].append(m)
    out = []
    for k in order:
        ms = groups[k]
        first = ms[0]
        extra = {x: first[x] for x in ("labels", "note") if x in first}
        per_run = [statistics.median(m["samples"]) if m.get("samples") else m.get("value") for m in ms]
        per_run = [float(v) for v in per_run if v is not None]
        pooled = [float(s) for m in ms for s in (m.get("samples") or [])]
        if pooled:
            merged = metric(first["name"], None, first["unit"], first["higher_is_better"], samples=pooled, **extra)
            ci = median_ci(pooled, per_run if len(ms) > 1 else None)
            if ci is not None:
                merged["stats"]["ci95"] = ci
        else:
            merged = metric(first["name"], statistics.median(per_run) if per_run else None, first["unit"],
                            first["higher_is_better"], **extra)
        if per_run:
            merged["runs"] = per_run
        out.append(merged)
    return out


def make_report(kind: str, config: dict, metrics: list[dict], status: str = "ok", *,
                measurement: dict | None = None, details=None, artifacts: dict | None = None,
                environment: dict | None = None) -> dict:
    from . import __version__
    from .environment import fingerprint, git_info

    r = {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "harness_version": __version__,
        "git": git_info(),
        "environment": environment if environment is not None else fingerprint(),
        "config": config,
        "metrics": metrics,
        "status": status,
    }
    if measurement is not None:
        r["measurement"] = measurement
    if details is not None:
        r["details"] = details
    if artifacts is not None:
        r["artifacts"] = artifacts
    return r


def validate(report: dict, source: str = "report") -> None:
    import jsonschema

    try:
        jsonschema.validate(report, schema())
    except jsonschema.ValidationError as e:
        path = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        raise UsageError(f"{source} is not a valid harness report at {path}: {e.message}") from None


def write_report(report: dict, path: str | os.PathLike) -> Path:
    validate(report)
    return atomic_write_text(path, json.dumps(report, indent=2, sort_keys=False, allow_nan=False) + "\n")


def load_report(path: str | os.PathLike) -> dict:
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"report {p} is a directory, not a file; pass the path of a JSON report written by harness")
    if not p.is_file():
        raise UsageError(f"report {p} does not exist; pass the path of a JSON report written by harness")
    try:
        r = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"report {p} is not valid JSON ({e}); re-run the command that wrote it") from None
    validate(r, str(p))
    return r


def get_metric(report: dict, name: str) -> dict | None:
    return next((m for m in report.get("metrics", []) if m["name"] == name), None)


def scored(report: dict) -> bool:
    """False for an eval report of samples generated but never run (`harness eval --generate-only`: config.scored
    false, status skipped); True for every other report, eval reports written before the flag included."""
    return not (report.get("kind") == "eval" and (report.get("config") or {}).get("scored") is False)


def find_reports(paths, who: str = "harness") -> list[tuple[Path, dict]]:
    """Valid reports among files and folders (searched recursively). Invalid JSON files found in folders are
    skipped with a note on stderr; a file named explicitly must be valid. A site written by
    `harness publish --site` (marked by a .harness-site file) holds copies of reports: not new reports."""
    import sys

    out = []
    for p in map(Path, paths):
        if p.is_file():
            out.append((p, load_report(p)))
            continue
        if not p.is_dir():
            raise UsageError(f"{p} does not exist; pass report files or folders of them (default: results/)")
        sites = [m.parent for m in p.rglob(".harness-site")]
        for q in sorted(p.rglob("*.json")):
            if q.name.startswith(".") or any(s in q.parents for s in sites):
                continue
            try:
                out.append((q, load_report(q)))
            except UsageError as e:
                print(f"{who}: skipping {q}: {e}", file=sys.stderr)
    return out
