"""Tasks and samples: the project's own suite (fixtures/tasks, see README), MultiPL-E bash problem files, and
human-eval style samples JSONL read without ever crashing on bad lines.

Own suite:  <root>/suite.json + <root>/<category>/<name>/{prompt.sh, solution.sh, test.sh, files/}; the
            program is prompt + completion, saved as ./candidate.sh, and `bash test.sh` must exit 0.
MultiPL-E:  a JSON list or JSONL of {"name", "language": "sh", "prompt", "tests", "stop_tokens", ...}; the
            program is prompt + completion + "\\n" + tests and must exit 0 (as MultiPL-E scores it).
"""
from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..resources import bundled

DEFAULT_TASKS = bundled("tasks")
NAME_RE = re.compile(r"^[a-z0-9_]+$")
MAX_COMPLETION_BYTES = 256 << 10   # longer completions are kept as samples but not run (status "rejected")
MAX_LINE_BYTES = 8 << 20           # longer JSONL lines are skipped unread (JSON escapes can inflate 6x)


@dataclass(frozen=True)
class Task:
    task_id: str
    category: str
    prompt: str
    format: str                                 # "own" or "multipl_e"
    test: str | None = None                     # own: test.sh
    tests: str | None = None                    # MultiPL-E: appended after the completion
    canonical: str | None = None                # own: solution.sh
    files: tuple[tuple[str, bytes, int], ...] = ()   # own: files/ as (relative path, bytes, mode)
    stop_tokens: tuple[str, ...] = ()


@dataclass
class Suite:
    name: str
    version: str | None
    content_hash: str
    source: str
    format: str
    tasks: list[Task]
    load_issues: list[dict] = field(default_factory=list)   # entries that could not become tasks, with reasons

    def by_id(self) -> dict[str, Task]:
        return {t.task_id: t for t in self.tasks}

    def describe(self) -> dict:
        return {"source": self.source, "format": self.format, "name": self.name, "version": self.version,
                "content_hash": self.content_hash, "tasks": len(self.tasks)}


# Files at a suite's root that describe its tests rather than being part of it (harness/eval/mutation_scores.py writes and
# reads them): the mutation scores record the hash they were computed on, so they cannot be inside it.
HASH_EXCLUDED = ("mutants-equivalent.json", "mutation-scores.json")


def suite_hash(root: Path) -> str:
    """sha256 over every file under root (but HASH_EXCLUDED at the root) in sorted relative-path order, each as
    path NUL size NUL bytes."""
    h = hashlib.sha256()
    files = (p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() not in HASH_EXCLUDED)
    for p in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        data = p.read_bytes()
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + str(len(data)).encode() + b"\0")
        h.update(data)
    return "sha256:" + h.hexdigest()


def load_suite(path: str | Path | None = None) -> Suite:
    """A directory with suite.json is the project's format; a .json/.jsonl file is a MultiPL-E problem file."""
    p = Path(path) if path is not None else DEFAULT_TASKS
    if p.is_dir():
        return load_own_suite(p)
    if p.is_file():
        return load_multipl_e(p)
    raise UsageError(f"tasks {p} does not exist; pass a task directory with suite.json (like fixtures/tasks) "
                     "or a MultiPL-E problem file (.json or .jsonl)")


def _read_text(p: Path) -> str | None:
    try:
        return p.read_text(encoding="utf-8") if p.is_file() else None
    except UnicodeDecodeError:
        return None


def load_own_suite(root: Path) -> Suite:
    meta_path = root / "suite.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        raise UsageError(f"{root} has no suite.json; pass the task suite directory (e.g. fixtures/tasks)") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError(f"{meta_path} is not a valid JSON object ({e}); fix the file") from None
    tasks, issues = [], []
    for prompt_path in sorted(root.glob("*/*/prompt.sh")):
        d = prompt_path.parent
        category, name = d.parent.name, d.name
        task_id = f"{category}/{name}"
        prompt, test = _read_text(prompt_path), _read_text(d / "test.sh")
        bad = [f"{f} is missing or not UTF-8" for f, v in (("prompt.sh", prompt), ("test.sh", test)) if v is None]
        if not (NAME_RE.match(category) and NAME_RE.match(name)):
            bad.append("category and name must match [a-z0-9_]+")
        if bad:
            issues.append({"task_id": task_id, "reason": "; ".join(bad)})
            continue
        files = []
        if (d / "files").is_dir():
            for f in sorted(p for p in (d / "files").rglob("*") if p.is_file()):
                files.append((f.relative_to(d / "files").as_posix(), f.read_bytes(), f.stat().st_mode & 0o777))
        tasks.append(Task(task_id, category, prompt, "own", test=test, canonical=_read_text(d / "solution.sh"),
                          files=tuple(files)))
    if not tasks and not issues:
        raise UsageError(f"{root} holds no tasks (<category>/<name>/prompt.sh); pass the task suite directory")
    return Suite(str(meta.get("name", root.name)), meta.get("version"), suite_hash(root), str(root), "own", tasks,
                 issues)


def load_multipl_e(path: Path) -> Suite:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"MultiPL-E file {path} is not UTF-8 ({e}); pass a JSON or JSONL problem file") from None
    entries: list = []
    issues: list[dict] = []
    try:
        doc = json.loads(text)
        entries = doc if isinstance(doc, list) else [doc]
    except json.JSONDecodeError:
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    entries.append(json.loads(line))
                except json.JSONDecodeError as e:
                    issues.append({"line": i, "reason": f"malformed JSON: {e.msg}"})
    tasks, seen = [], set()
    for i, e in enumerate(entries, 1):
        where = {"entry": i}
        if not isinstance(e, dict):
            issues.append({**where, "reason": "not a JSON object"})
            continue
        missing = [k for k in ("name", "prompt", "tests") if not isinstance(e.get(k), str)]
        if missing:
            issues.append({**where, "task_id": e.get("name") if isinstance(e.get("name"), str) else None,
                           "reason": "missing or non-string field(s): " + ", ".join(missing)})
            continue
        name = e["name"]
        if e.get("language", "sh") not in ("sh", "bash"):
            issues.append({**where, "task_id": name, "reason": f"language {e.get('language')!r} is not sh"})
            continue
        if name in seen:
            issues.append({**where, "task_id": name, "reason": "duplicate name (first one kept)"})
            continue
        seen.add(name)
        stops = e.get("stop_tokens") or []
        stops = tuple(s for s in stops if isinstance(s, str) and s) if isinstance(stops, list) else ()
        tasks.append(Task(name, "multipl_e", e["prompt"], "multipl_e", tests=e["tests"], stop_tokens=stops))
    if not tasks and not issues:
        raise UsageError(f"MultiPL-E file {path} holds no problems; pass a JSON list or JSONL of problems")
    return Suite(path.stem, None, "sha256:" + hashlib.sha256(raw).hexdigest(), str(path), "multipl_e", tasks,
                 issues)


# -- samples ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    task_id: str
    completion: str
    line: int
    index: int                   # 0-based position among this task's samples
    rejected: str | None = None  # why it is not run (scored as a failure)


@dataclass
class SampleSet:
    source: str
    samples: list[Sample]
    bad: Counter                 # reason -> count; lines are skipped except "completion_too_large" (rejected)
    bad_examples: list[dict]     # the first few, with line numbers

    def per_task(self) -> dict[str, list[Sample]]:
        out: dict[str, list[Sample]] = {}
        for s in self.samples:
            out.setdefault(s.task_id, []).append(s)
        return out


def read_samples(path: str | Path, known_ids: set[str], max_examples: int = 20) -> SampleSet:
    """Read {"task_id", "completion"} lines. Bad lines are counted by reason, never fatal: malformed JSON,
    invalid UTF-8, missing or non-string fields, unknown task ids, over-long lines. Enormous completions stay
    samples (a model wrote them) but are rejected unrun, so they count as failures."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"samples file {p} does not exist; pass a JSONL file of {{\"task_id\", \"completion\"}}")
    samples, bad, examples, counts = [], Counter(), [], Counter()

    def flag(lineno: int, reason: str, detail: str = "") -> None:
        bad[reason] += 1
        if len(examples) < max_examples:
            examples.append({"line": lineno, "reason": reason, **({"detail": detail[:200]} if detail else {})})

    with p.open("rb") as f:
        lineno = 0
        while True:
            raw = f.readline(MAX_LINE_BYTES + 1)
            if not raw:
                break
            lineno += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while (rest := f.readline(1 << 20)) and not rest.endswith(b"\n"):
                    pass
                flag(lineno, "line_too_long", f"over {MAX_LINE_BYTES} bytes; not parsed")
                continue
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                flag(lineno, "invalid_utf8", str(e))
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                flag(lineno, "malformed_json", e.msg)
                continue
            if not isinstance(obj, dict):
                flag(lineno, "not_an_object")
                continue
            tid, comp = obj.get("task_id"), obj.get("completion")
            if not isinstance(tid, str) or not isinstance(comp, str):
                flag(lineno, "missing_field", "task_id and completion must be strings")
                continue
            if tid not in known_ids:
                flag(lineno, "unknown_task_id", tid)
                continue
            try:
                size = len(comp.encode("utf-8"))
            except UnicodeEncodeError:
                flag(lineno, "invalid_unicode", "completion holds lone surrogates")
                continue
            rejected = None
            if size > MAX_COMPLETION_BYTES:
                flag(lineno, "completion_too_large", f"{size} bytes > {MAX_COMPLETION_BYTES}; scored as a failure")
                rejected = f"completion of {size} bytes exceeds {MAX_COMPLETION_BYTES}"
            samples.append(Sample(tid, comp, lineno, counts[tid], rejected))
            counts[tid] += 1
    return SampleSet(str(p), samples, bad, examples)


def load_prompts(path: str | Path) -> list[Task]:
    """Prompts to complete, as tasks: a task directory, a .txt (one prompt per line), JSONL/JSON of
    {task_id, prompt[, stop_tokens]} or MultiPL-E problems; only task_id, prompt and stop_tokens are read."""
    p = Path(path)
    if p.is_dir():
        tasks = load_suite(p).tasks
        if not tasks:
            raise UsageError(f"task directory {p} holds no tasks; pass a directory like fixtures/tasks")
        return tasks
    if not p.is_file():
        raise UsageError(f"prompts file {p} does not exist; pass a .txt, .jsonl or MultiPL-E .json file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"prompts file {p} is not UTF-8 text ({e})") from None
    if p.suffix == ".txt":
        lines = (l for l in text.splitlines() if l.strip())
        tasks = [Task(f"{p.stem}/{i}", "", line, "prompts") for i, line in enumerate(lines)]
    else:
        try:
            if p.suffix == ".json":
                data = json.loads(text)
                records = data if isinstance(data, list) else [data]
            else:
                records = [json.loads(l) for l in text.splitlines() if l.strip()]
        except json.JSONDecodeError as e:
            raise UsageError(f"prompts file {p} is not valid JSON/JSONL ({e})") from None
        tasks = []
        for i, r in enumerate(records):
            if not isinstance(r, dict) or not isinstance(r.get("prompt"), str):
                raise UsageError(f"prompts file {p}, record {i + 1}: expected an object with a string 'prompt' "
                                 f"and a 'task_id' (or MultiPL-E 'name')")
            tid = r.get("task_id", r.get("name", f"{p.stem}/{i}"))
            stops = r.get("stop_tokens") or []
            tasks.append(Task(str(tid), "", r["prompt"], "prompts",
                              stop_tokens=tuple(s for s in stops if isinstance(s, str))))
    if not tasks:
        raise UsageError(f"prompts file {p} holds no prompts; add one prompt per line (.txt) or one JSON "
                         f"object per line (.jsonl)")
    return tasks
