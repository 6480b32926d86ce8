"""ShellCheck findings per program: `shellcheck -f json1 -s bash --norc` over batches of temp files.

A program is *clean* when ShellCheck reports nothing at all, style and info included (the strict reading of
"clean"); `clean_at_warning` ignores info and style. Programs ShellCheck could not check (time limit, crash)
are `checked=False` and left out of both rates.
"""
from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

SEVERITIES = ("error", "warning", "info", "style")
BATCH = 24  # files per shellcheck process: one start-up (~20 ms) per batch instead of per program


@dataclass(frozen=True)
class Finding:
    code: int      # SC code, e.g. 2086
    level: str     # one of SEVERITIES
    line: int
    message: str


@dataclass(frozen=True)
class ShellcheckResult:
    checked: bool
    findings: tuple[Finding, ...] = field(default=())
    error: str | None = None

    def count(self, level: str) -> int:
        return sum(f.level == level for f in self.findings)

    @property
    def clean(self) -> bool:
        return self.checked and not self.findings

    @property
    def clean_at_warning(self) -> bool:
        return self.checked and not any(f.level in ("error", "warning") for f in self.findings)


def shellcheck_path() -> str | None:
    return shutil.which("shellcheck")


@functools.lru_cache(maxsize=1)
def shellcheck_version() -> str | None:
    exe = shellcheck_path()
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"version:\s*(\S+)", out)
    return m.group(1) if m else None


def _run_batch(paths: list[Path], timeout_s: float) -> dict[str, ShellcheckResult]:
    """Findings for each path; a batch that times out or fails is retried in halves down to single files."""
    try:
        p = subprocess.run([shellcheck_path(), "-f", "json1", "-s", "bash", "--norc", *map(str, paths)],
                           capture_output=True, timeout=timeout_s + len(paths))
        if p.returncode not in (0, 1):
            raise RuntimeError(p.stderr.decode("utf-8", "replace").strip()[:300] or f"exit status {p.returncode}")
        comments = json.loads(p.stdout or b'{"comments": []}')["comments"]
    except (subprocess.TimeoutExpired, RuntimeError, json.JSONDecodeError, KeyError) as e:
        if len(paths) > 1:
            half = len(paths) // 2
            return {**_run_batch(paths[:half], timeout_s), **_run_batch(paths[half:], timeout_s)}
        why = f"took longer than {timeout_s} s" if isinstance(e, subprocess.TimeoutExpired) else str(e)
        return {str(paths[0]): ShellcheckResult(False, (), f"shellcheck {why}")}
    found: dict[str, list[Finding]] = {str(q): [] for q in paths}
    for c in comments:
        found.setdefault(c["file"], []).append(Finding(int(c["code"]), c["level"], int(c["line"]), c["message"]))
    return {k: ShellcheckResult(True, tuple(v)) for k, v in found.items()}


def shellcheck_programs(programs: list[str], workers: int = 2, timeout_s: float = 30.0,
                        progress=None) -> list[ShellcheckResult]:
    """ShellCheck each program (read as bash). `timeout_s` is per program."""
    if shellcheck_path() is None:
        raise FileNotFoundError("shellcheck not found on PATH")
    with tempfile.TemporaryDirectory(prefix="harness-shellcheck-") as tmp:
        paths = []
        for i, src in enumerate(programs):
            path = Path(tmp) / f"p{i:07d}.sh"
            path.write_text(src, encoding="utf-8", errors="replace")
            paths.append(path)
        batches = [paths[k:k + BATCH] for k in range(0, len(paths), BATCH)]
        results: dict[str, ShellcheckResult] = {}
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for batch, res in zip(batches, pool.map(lambda b: _run_batch(b, timeout_s), batches)):
                results.update(res)
                if progress is not None:
                    progress(len(batch))
        return [results.get(str(p), ShellcheckResult(False, (), "no result from shellcheck")) for p in paths]


def summarize(results: list[ShellcheckResult], top: int = 10) -> dict:
    checked = [r for r in results if r.checked]
    n = len(checked)
    by_sev = {s: sum(r.count(s) for r in checked) for s in SEVERITIES}
    codes: Counter = Counter()
    example: dict[int, tuple[str, str]] = {}
    for r in checked:
        for f in r.findings:
            codes[f.code] += 1
            example.setdefault(f.code, (f.level, f.message))
    return {
        "checked": n,
        "unchecked": len(results) - n,
        "clean_definition": "no finding of any severity (error, warning, info, style)",
        "clean_rate": sum(r.clean for r in checked) / n if n else None,
        "clean_at_warning_rate": sum(r.clean_at_warning for r in checked) / n if n else None,
        "findings_by_severity": by_sev,
        "per_program_by_severity": {s: by_sev[s] / n if n else None for s in SEVERITIES},
        "programs_with_severity": {s: sum(r.count(s) > 0 for r in checked) for s in SEVERITIES},
        "top_codes": [{"code": f"SC{c}", "count": k, "level": example[c][0], "example": example[c][1]}
                      for c, k in codes.most_common(top)],
    }
