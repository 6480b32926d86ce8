"""One task + one completion -> a program in a fresh sandbox work directory -> a classified result; and the
soundness check that runs before any model is blamed: can this problem be passed at all?"""
from __future__ import annotations

import re
import subprocess
from dataclasses import asdict, dataclass

from .sandbox import ENV, RunResult, Sandbox
from .tasks import Task

HEAD_BYTES = 500          # stdout/stderr kept per result in reports
TRIVIAL_BODY = {"own": ":\n", "multipl_e": "  :"}   # bash has no empty function body, so ':' (a no-op)
STATUSES = ("passed", "failed", "syntax_error", "timeout", "cpu_limit", "oom", "output_limit", "rejected", "error")
_OOM = re.compile(rb"cannot allocate|out of memory|memoryerror|memory exhausted|xmalloc|xrealloc", re.I)
_SIGXCPU = 24


@dataclass(frozen=True)
class Execution:
    status: str                   # one of STATUSES
    exit_code: int | None
    duration_s: float
    stdout: str                   # head, decoded with replacement characters
    stderr: str
    leftover: int = 0             # processes that outlived the program and were killed (0 = contained)
    detail: str | None = None

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["duration_s"] = round(self.duration_s, 4)
        return {k: v for k, v in d.items() if v is not None}


def program(task: Task, completion: str) -> str:
    """The program that runs: prompt + completion (+ "\\n" + tests for MultiPL-E), as each convention says."""
    if task.format == "multipl_e":
        return task.prompt + completion + "\n" + (task.tests or "")
    return task.prompt + completion


def build(task: Task, completion: str) -> tuple[list[str], dict]:
    """argv and work-directory files for one run."""
    prog = program(task, completion).encode("utf-8")
    if task.format == "multipl_e":
        return ["bash", "program.sh"], {"program.sh": (prog, 0o644)}
    files = {rel: (data, mode) for rel, data, mode in task.files}
    files["test.sh"] = ((task.test or "").encode("utf-8"), 0o644)
    files["candidate.sh"] = (prog, 0o755)
    return ["bash", "test.sh"], files


def _head(b: bytes) -> str:
    s = b[:HEAD_BYTES].decode("utf-8", "replace")
    return s + ("…" if len(b) > HEAD_BYTES else "")


def classify(r: RunResult) -> str:
    if r.sandbox_error:
        return "error"
    if r.timed_out:
        return "timeout"
    if r.output_limited:
        return "output_limit"
    if r.exit_code == 0:
        return "passed"
    if r.exit_code == 128 + _SIGXCPU:
        return "cpu_limit"
    if _OOM.search(r.stderr):
        return "oom"
    if b"syntax error" in r.stderr:
        return "syntax_error"
    return "failed"


class Executor:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def run(self, task: Task, completion: str, rejected: str | None = None) -> Execution:
        if rejected:
            return Execution("rejected", None, 0.0, "", "", detail=rejected)
        argv, files = build(task, completion)
        r = self.sandbox.run(argv, files)
        status = classify(r)
        detail = r.sandbox_error or (f"{r.output_limited} passed its cap" if r.output_limited else None)
        if r.leftover:
            detail = "; ".join(x for x in (f"{r.leftover} process(es) outlived the program and were killed", detail)
                               if x)
        return Execution(status, r.exit_code, r.duration_s, _head(r.stdout), _head(r.stderr), r.leftover, detail)


def parse_error(text: str) -> str | None:
    """First error line from `bash -n` (parse only, nothing runs), or None when the text parses."""
    r = subprocess.run(["bash", "-n"], input=text.encode("utf-8"), capture_output=True, timeout=30,
                       env={"PATH": ENV["PATH"], "LANG": "C.UTF-8"})  # not the CLI's LD_PRELOAD
    if r.returncode == 0:
        return None
    lines = r.stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[0] if lines else f"bash -n exited {r.returncode}"


_LINE_DIAG = re.compile(r"^program\.sh: line (\d+): (.*)$", re.M)


def check_soundness(task: Task, executor: Executor) -> dict:
    """Why no completion (or any completion) could be scored fairly on this problem.

    Returns {"reasons": [...] (empty when sound), "unpassable": the program cannot parse whatever the
    completion, "runs": the runs made, for the report}."""
    reasons, runs, unpassable = [], {}, False
    trivial = TRIVIAL_BODY[task.format]
    err = parse_error(program(task, trivial))
    if err:
        unpassable = True
        reasons.append(f"prompt + trivial body{' + tests' if task.format == 'multipl_e' else ''} is not valid "
                       f"bash: {err}")
    if task.format == "own":
        if (test_err := parse_error(task.test or "")):
            unpassable = True
            reasons.append(f"test.sh is not valid bash: {test_err}")
        if task.canonical is None:
            reasons.append("no canonical solution (solution.sh)")
        else:
            ex = runs["canonical"] = executor.run(task, task.canonical)
            if not ex.passed:
                reasons.append(f"the canonical solution does not pass ({ex.status}, exit {ex.exit_code}): "
                               f"{ex.stderr.strip()[:200]}")
    ex = runs["trivial"] = executor.run(task, trivial)
    if ex.passed:
        reasons.append("the tests pass with a trivial completion (':'), so they cannot tell right from wrong")
    elif ex.status in ("timeout", "error"):
        reasons.append(f"a trivial completion does not finish cleanly ({ex.status})")
    if task.format == "multipl_e" and not err:
        prompt_lines = task.prompt.count("\n") + 1
        for m in _LINE_DIAG.finditer(ex.stderr):
            if int(m.group(1)) <= prompt_lines:
                reasons.append(f"prompt line {m.group(1)} runs as code: {m.group(2)[:160]}")
                break
    return {"reasons": reasons, "unpassable": unpassable, "runs": {k: v.to_dict() for k, v in runs.items()}}
