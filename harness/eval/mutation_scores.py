"""The bookkeeping of a suite's mutation scores: the reviewed equivalent mutants (mutants-equivalent.json at
the suite's root), the scores shipped with the suite (mutation-scores.json, each task's score with the hash of
the task folder it was measured on), a run's summary, and the checks of a run against them."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .mutate import TaskMutation

THRESHOLD = 0.9  # every task's tests reject at least this share of its non-equivalent mutants
EQUIVALENTS = "mutants-equivalent.json"  # at the suite root: {"tasks": {task id: [{"mutant": key, "reason"}]}}
SCORES = "mutation-scores.json"  # at the suite root: what score_file() writes


def load_equivalents(root: str | Path) -> dict[str, dict[str, str]]:
    """{task id: {mutant key: reason}} from the suite's EQUIVALENTS file ({} if it has none)."""
    p = Path(root) / EQUIVALENTS
    if not p.is_file():
        return {}
    data = json.loads(p.read_text(encoding="utf-8"))
    return {tid: {e["mutant"]: e["reason"] for e in entries} for tid, entries in data["tasks"].items()}


def summary(suite, results: list[TaskMutation], isolation: dict, cap: int | None) -> dict:
    """What a mutation run found, with the suite's identity (name, version, content hash) and the isolation."""
    killed, run = sum(r.killed for r in results), sum(r.run for r in results)
    eq = sum(r.equivalent for r in results)
    return {"suite": suite.describe(), "isolation": isolation, "cap": cap, "mutants_generated":
            sum(r.generated for r in results), "mutants_run": run, "mutants_equivalent": eq,
            "mutants_killed": killed, "mutation_score": killed / (run - eq) if run > eq else None,
            "tasks_without_kill": [r.task_id for r in results if r.killed == 0],
            "tasks_below_threshold": [r.task_id for r in results if r.score < THRESHOLD],
            "tasks": [asdict(r) | {"score": r.score} for r in results]}


def task_hash(root: str | Path, task_id: str) -> str:
    """Content hash of one task's folder (prompt, solution, tests, files): what its score was measured on."""
    from .tasks import suite_hash

    return suite_hash(Path(root) / task_id)


def equivalents_hash(root: str | Path) -> str | None:
    p = Path(root) / EQUIVALENTS
    return "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None


def task_score(root: str | Path, r: TaskMutation) -> dict:
    """One task's entry in the scores file."""
    return {"task_hash": task_hash(root, r.task_id), "mutants": r.generated, "equivalent": r.equivalent,
            "killed": r.killed, "score": round(r.score, 4), "survivors": r.survivors}


def score_file(suite, results: list[TaskMutation], previous: dict | None = None) -> dict:
    """The shipped scores: every task's score over all its mutants, with the suite's name, version and content
    hash and the hash of the equivalents file. Tasks not in `results` keep their entry from `previous`."""
    tasks = dict((previous or {}).get("tasks", {}))
    for r in results:
        if r.run != r.generated:
            raise ValueError(f"{r.task_id}: a scores file needs every mutant run, not {r.run} of {r.generated}")
        tasks[r.task_id] = task_score(suite.source, r)
    ids = [t.task_id for t in suite.tasks if t.task_id in tasks]
    tasks = {tid: tasks[tid] for tid in ids}
    n = sum(t["mutants"] for t in tasks.values())
    eq = sum(t["equivalent"] for t in tasks.values())
    killed = sum(t["killed"] for t in tasks.values())
    return {"about": "mutation score of each task's tests: the share of the non-equivalent mutants of its "
                     "canonical solution (harness/eval/mutate.py, all mutants) that test.sh rejects; written by "
                     "harness mutate --write-scores",
            "suite": {"name": suite.name, "version": suite.version, "content_hash": suite.content_hash},
            "equivalents_sha256": equivalents_hash(suite.source), "threshold": THRESHOLD,
            "mutants": n, "equivalent": eq, "killed": killed,
            "mutation_score": round(killed / (n - eq), 4) if n > eq else None,
            "min_task_score": min((t["score"] for t in tasks.values()), default=None), "tasks": tasks}


def load_scores(root: str | Path) -> dict | None:
    p = Path(root) / SCORES
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None


def check_scores(root: str | Path, results: list[TaskMutation], shipped: dict | None,
                 compare: bool = True) -> list[str]:
    """Why the measured `results` fall below THRESHOLD, contradict the recorded equivalents or (with `compare`)
    disagree with the shipped scores ([] if none of that)."""
    problems = []
    shipped_tasks = (shipped or {}).get("tasks", {})
    for r in results:
        if r.score < THRESHOLD:
            problems.append(f"{r.task_id}: score {r.score:.3f} < {THRESHOLD}; survivors: {'; '.join(r.survivors)}")
        if r.equivalent_killed:
            problems.append(f"{r.task_id}: recorded as equivalent but rejected: {'; '.join(r.equivalent_killed)}")
        if r.stale_equivalents:
            problems.append(f"{r.task_id}: recorded equivalents no mutant has: {'; '.join(r.stale_equivalents)}")
        s = shipped_tasks.get(r.task_id)
        if not compare:
            continue
        if s is None:
            problems.append(f"{r.task_id}: not in the shipped {SCORES}")
        elif r.run == r.generated and task_score(root, r) != s:
            problems.append(f"{r.task_id}: measured {task_score(root, r)} but {SCORES} ships {s}")
    return problems
