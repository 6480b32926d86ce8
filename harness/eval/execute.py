"""One task + one completion -> a judged run in a fresh sandbox -> a classified result; and the soundness check
that runs before any model is blamed: can this problem be passed at all?

The verdict comes from the judge, never from the candidate's own exit status (sandbox.py says how the two are
kept apart):
- own format: `bash test.sh` runs as the judge from the judge's private directory; `./candidate.sh` in the work
  directory runs prompt + completion as the candidate. The tests and the task's files are not readable to it
  except the work files it is given.
- MultiPL-E: the program is prompt + completion + "\n" + tests and must exit 0, the completion first cut at the
  problem's stop tokens as MultiPL-E's generation cuts it. It runs split at the function the prompt opens: the
  judge runs prompt + a body that calls ./candidate.sh + tests, and the candidate process runs prompt +
  completion, closes the function and calls it with the arguments it was given. Every call of the function in
  the tests is `$(...)`, a subshell, in MultiPL-E's bash translation, so nothing is shared between calls either
  way; what changes is that a completion can no longer end the function early and exit 0 before the tests, nor
  read them. A problem whose prompt does not end by opening a function, or whose tests do not start by closing
  it, runs as one program as the candidate, and its results say that the judge was not separated."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from reference.bash import bash_n
from reference.stops import cut_at_stop

from ..sandbox.sandbox import JUDGE_DIR, Job, RunResult, Sandbox
from .tasks import Task

HEAD_BYTES = 500          # stdout/stderr kept per result in reports
TRIVIAL_BODY = {"own": ":\n", "multipl_e": "  :"}   # bash has no empty function body, so ':' (a no-op)
STATUSES = ("passed", "failed", "syntax_error", "timeout", "cpu_limit", "oom", "output_limit", "rejected", "error")
_OOM = re.compile(rb"cannot allocate|out of memory|memoryerror|memory exhausted|xmalloc|xrealloc", re.I)
# bash 5.1 says "syntax error: unexpected end of file"; 5.2 reports an unclosed quote or $( as
# "unexpected EOF while looking for matching `)'" with no "syntax error" on that line
_SYNTAX = re.compile(rb"syntax error|unexpected EOF while looking for matching")
_FUNCTION_OPEN = re.compile(r"^\s*(?:function\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*(?:\(\s*\))?\s*\{\s*$")
NOT_SEPARATED = "the judge was not separated from the candidate"
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
    """The program that runs: prompt + completion (+ "\n" + tests for MultiPL-E, the completion cut at the
    problem's stop tokens first), as each convention says."""
    if task.format == "multipl_e":
        return task.prompt + cut_at_stop(completion, task.stop_tokens) + "\n" + (task.tests or "")
    return task.prompt + completion


def split_function(task: Task) -> str | None:
    """The name of the function a MultiPL-E prompt opens on its last line and its tests close on their first,
    or None when the problem is not of that shape."""
    lines = task.prompt.rstrip("\n").rsplit("\n", 1)
    m = _FUNCTION_OPEN.match(lines[-1])
    first = next((ln for ln in (task.tests or "").splitlines() if ln.strip()), "")
    return m.group(1) if m and task.prompt.endswith("\n") and first.strip() == "}" else None


def build(task: Task, completion: str) -> Job:
    """The judged run of one completion (sandbox.Job): the judge's files, the work files and the candidate."""
    if task.format == "multipl_e":
        fn = split_function(task)
        if fn is None:  # program() cuts at the stop tokens
            return Job(["bash", "./candidate.sh"], candidate=program(task, completion).encode("utf-8"))
        completion = cut_at_stop(completion, task.stop_tokens)
        judge = task.prompt + '    ./candidate.sh "$@"\n' + (task.tests or "")
        cand = f'{task.prompt}{completion}\n}}\n{fn} "$@"\n'
        return Job(["bash", f"{JUDGE_DIR}/program.sh"], private={"program.sh": judge.encode("utf-8")},
                   candidate=cand.encode("utf-8"))
    files = {rel: (data, mode) for rel, data, mode in task.files}
    return Job(["bash", f"{JUDGE_DIR}/test.sh"], files, {"test.sh": (task.test or "").encode("utf-8")},
               candidate=program(task, completion).encode("utf-8"))


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
    if r.oom_kills:  # the sandbox's memory cap was reached: not a pass, whatever the exit status
        return "oom"
    if r.exit_code == 0:
        return "passed"
    if r.exit_code == 128 + _SIGXCPU:
        return "cpu_limit"
    if _OOM.search(r.stderr):
        return "oom"
    if _SYNTAX.search(r.stderr):
        return "syntax_error"
    return "failed"


class Executor:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def run(self, task: Task, completion: str, rejected: str | None = None) -> Execution:
        if rejected:
            return Execution("rejected", None, 0.0, "", "", detail=rejected)
        job = build(task, completion)
        r = self.sandbox.execute(job)
        status = classify(r)
        notes = [f"{r.leftover} process(es) outlived the program and were killed" if r.leftover else None,
                 r.sandbox_error, f"{r.output_limited} passed its cap" if r.output_limited else None,
                 f"the sandbox's memory cap was reached ({r.oom_kills} OOM kill(s))" if r.oom_kills else None,
                 NOT_SEPARATED if self.sandbox.separated and not job.private else None]
        detail = "; ".join(x for x in notes if x) or None
        return Execution(status, r.exit_code, r.duration_s, _head(r.stdout), _head(r.stderr), r.leftover, detail)


def parse_error(text: str) -> str | None:
    """First error line from `bash -n` (parse only, nothing runs), or None when the text parses."""
    ok, line = bash_n(text, timeout=30)
    return None if ok else line


_LINE_DIAG = re.compile(r"^(?:\S*/)?program\.sh: line (\d+): (.*)$", re.M)


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
