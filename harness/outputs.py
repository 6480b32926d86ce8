"""Where a command reads and writes: every output path is checked before the work starts (not an input, not
a directory where a file goes, not under a file, writable, not something other than what it replaces), and
every input path says what is wrong with it (missing, a directory where a file is expected, or the reverse).

Each check raises UsageError (exit 2, one line naming the flag and what to do); none of them creates or
changes anything except a probe file that is removed at once."""
from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterable

from .errors import UsageError

MAX_WORKERS = max(256, 2 * (os.cpu_count() or 1))  # parallel programs or threads a command runs at once


def _same(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.abspath(a) == os.path.abspath(b)


def _existing_ancestor(path: Path, flag: str) -> Path:
    """The nearest existing directory above `path` (which may not exist); UsageError when one of its
    ancestors is a file, so that nothing can be created there."""
    for anc in Path(os.path.abspath(path)).parents:
        if anc.exists():
            if not anc.is_dir():
                raise UsageError(f"{flag} {path} is under {anc}, which is a file, not a directory; choose a path in "
                                 f"a directory")
            return anc
    return Path("/")


def _probe(directory: Path, flag: str, path: Path) -> None:
    """Create and remove a file in `directory`: the only test of writability that holds for root too."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".harness-probe-", dir=directory)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise UsageError(f"{flag} {path} cannot be written ({e.strerror or e} in {directory}); choose a writable "
                         f"place") from None


def _is_report(path: Path) -> bool:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(d, dict) and "schema_version" in d and "kind" in d


def check_output(path, flag: str = "--out", *, inputs: Iterable[tuple[str, object]] = (), kind: str = "file",
                 replaces: str | None = None) -> Path:
    """Refuse an output path before any work: one of the `inputs` ((flag, path) pairs; None paths are skipped),
    a directory where a file goes (or a file where a directory goes), a path under a file, an unwritable
    place, or something that is not a regular file. replaces="report": an existing file must be a harness
    report (anything else there would be destroyed)."""
    p = Path(path)
    for in_flag, q in inputs:
        if q is not None and _same(p, Path(q)):
            raise UsageError(f"{flag} {p} is also the input {in_flag} {q}; writing there would destroy it: "
                             f"choose another {flag}")
    if kind == "dir":
        if p.exists() and not p.is_dir():
            raise UsageError(f"{flag} {p} is a file, not a directory; pass a directory (it is created if missing)")
        _probe(p if p.is_dir() else _existing_ancestor(p, flag), flag, p)
        return p
    if p.is_dir():
        raise UsageError(f"{flag} {p} is a directory; pass a file path, e.g. {p / 'report.json'}")
    if p.exists() and not p.is_file():
        raise UsageError(f"{flag} {p} is not a regular file (a device or a pipe); pass a file path")
    if p.is_file() and replaces == "report" and not _is_report(p):
        raise UsageError(f"{flag} {p} exists and is not a harness report; writing there would destroy it: choose "
                         f"another {flag} or move the file away")
    parent = p.parent if p.parent.is_dir() else _existing_ancestor(p, flag)
    _probe(parent, flag, p)
    return p


def check_input(path, flag: str, *, kind: str = "file", what: str = "file", hint: str = "") -> Path:
    """An input that must exist as a file (kind="file"), a directory (kind="dir") or either (kind="any")."""
    p = Path(path)
    tail = f"; {hint}" if hint else ""
    if not p.exists():
        raise UsageError(f"{flag} {p} does not exist{tail}")
    if kind == "file" and p.is_dir():
        raise UsageError(f"{flag} {p} is a directory, not a {what}{tail}")
    if kind == "dir" and not p.is_dir():
        raise UsageError(f"{flag} {p} is a file, not a directory{tail}")
    return p


def check_number(value, flag: str, *, low=None, high=None, low_open: bool = False, example: str = "",
                 why: str = "") -> None:
    """A finite number within [low, high] (low excluded with low_open); `why` explains the bounds."""
    if value is None:
        return
    ex = (f" ({why})" if why else "") + (f", e.g. {flag} {example}" if example else "")
    if not math.isfinite(value):
        raise UsageError(f"{flag} {value} is not a finite number; pass a number{ex}")
    if low is not None and (value <= low if low_open else value < low):
        raise UsageError(f"{flag} {value} is too small: it must be {'above' if low_open else 'at least'} {low}{ex}")
    if high is not None and value > high:
        raise UsageError(f"{flag} {value} is too large: it must be at most {high}{ex}")


def check_workers(value: int, flag: str = "--workers") -> None:
    check_number(value, flag, low=1, high=MAX_WORKERS, example=str(os.cpu_count() or 2))


def report_destination(out, succeeded: bool, tag: str = "failed") -> Path:
    """Where a run's report goes: `out`, except that the report of a run that did not succeed never replaces a
    file already there (an earlier report); it goes beside it, as OUT.<tag>.json."""
    out = Path(out)
    if succeeded or not out.exists():
        return out
    return out.with_name(f"{out.stem}.{tag}{out.suffix or '.json'}")


def emit_lines(lines: list[str], out, command: str, what: str) -> None:
    """JSONL (or any) lines to `out` atomically, saying how many were written, or to stdout when `out` is None."""
    from .report import atomic_write_text

    text = "".join(line + "\n" for line in lines)
    if out:
        atomic_write_text(out, text)
        print(f"harness {command}: wrote {len(lines)} {what} to {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
