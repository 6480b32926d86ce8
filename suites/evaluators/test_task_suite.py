"""The project's bash task suite (fixtures/tasks, format in README): its structure, and that it can tell right
from wrong: every canonical solution passes (pass@1 = 1.0) and an empty completion fails every task
(pass@1 = 0.0). Programs run in the harness sandbox (bubblewrap); where bwrap cannot start, the canonical
and empty programs, which are trusted, run with the harness's unsafe runner instead."""
from __future__ import annotations

import json
import re
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness.errors import UsageError
from harness.eval.execute import Executor
from harness.sandbox.sandbox import Sandbox
from harness.eval.tasks import DEFAULT_TASKS, NAME_RE, load_suite, suite_hash
from reference.bash import bash_n

ROOT = DEFAULT_TASKS
CATEGORIES = ("file_handling", "text_processing", "argument_parsing", "control_flow", "arithmetic", "strings",
              "environment_processes", "error_handling", "pipelines")
MIN_PER_CATEGORY, MIN_TOTAL = 12, 120
TASK_DIRS = sorted(d for c in ROOT.iterdir() if c.is_dir() for d in c.iterdir() if d.is_dir())
TASK_IDS = [f"{d.parent.name}/{d.name}" for d in TASK_DIRS]


def test_suite_metadata():
    meta = json.loads((ROOT / "suite.json").read_text())
    assert meta["name"] == "harness-bash-tasks"
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta["version"])
    assert meta.get("description")
    present = sorted({d.parent.name for d in TASK_DIRS})
    assert sorted(meta["categories"]) == present, "suite.json categories must match the category folders"
    assert set(CATEGORIES) <= set(present)
    counts = {c: sum(d.parent.name == c for d in TASK_DIRS) for c in present}
    assert all(n >= MIN_PER_CATEGORY for n in counts.values()), counts
    assert len(TASK_DIRS) >= MIN_TOTAL


def test_loader_sees_every_task():
    suite = load_suite(ROOT)
    assert suite.load_issues == []
    assert sorted(t.task_id for t in suite.tasks) == TASK_IDS
    assert (suite.name, suite.version) == ("harness-bash-tasks", "1.1.0")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", suite.content_hash)
    assert suite.content_hash == suite_hash(ROOT)


def _parses(text: str) -> str:
    ok, error = bash_n(text, timeout=30)
    return "" if ok else error


@pytest.mark.parametrize("task_dir", TASK_DIRS, ids=TASK_IDS)
def test_task_layout(task_dir):
    assert NAME_RE.match(task_dir.parent.name) and NAME_RE.match(task_dir.name)
    entries = {p.name for p in task_dir.iterdir()}
    assert {"prompt.sh", "solution.sh", "test.sh"} <= entries
    assert entries <= {"prompt.sh", "solution.sh", "test.sh", "files"}, f"unexpected files: {entries}"
    if "files" in entries:
        assert (task_dir / "files").is_dir() and any((task_dir / "files").iterdir())

    prompt = (task_dir / "prompt.sh").read_text()
    assert prompt.startswith("#!/bin/bash\n") and prompt.endswith("\n")
    body = prompt.splitlines()[1:]
    assert len(body) >= 3, "a prompt states the task in several comment lines"
    assert all(line == "#" or line.startswith("# ") for line in body), "after the shebang, only comment lines"

    solution = (task_dir / "solution.sh").read_text()
    assert solution.strip() and solution.endswith("\n") and not solution.startswith("#!")
    assert not _parses(prompt + solution), "prompt + solution must be valid bash"

    test = (task_dir / "test.sh").read_text()
    assert test.startswith("#!/bin/bash\n") and "./candidate.sh" in test
    assert not _parses(test), "test.sh must be valid bash"


@pytest.fixture(scope="module")
def executions():
    """{task_id: (canonical Execution, empty-completion Execution)}, run two at a time."""
    try:
        sandbox = Sandbox(slots=2)
    except UsageError as e:
        warnings.warn(f"no bubblewrap sandbox ({e}); running the trusted canonical and empty programs unsandboxed")
        sandbox = Sandbox(slots=2, unsafe=True)
    executor = Executor(sandbox)
    suite = load_suite(ROOT)

    def both(task):
        return task.task_id, (executor.run(task, task.canonical), executor.run(task, ""))

    with sandbox, ThreadPoolExecutor(2) as pool:
        return dict(pool.map(both, suite.tasks))


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_canonical_solution_passes(executions, task_id):
    ex = executions[task_id][0]
    assert ex.passed, f"{ex.status} (exit {ex.exit_code}): {ex.stderr}"


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_empty_completion_fails(executions, task_id):
    ex = executions[task_id][1]
    assert not ex.passed and ex.status == "failed", f"{ex.status}: the tests accept a program that does nothing"


def test_pass_at_1(executions, record_property):
    n = len(executions)
    canonical = sum(c.passed for c, _ in executions.values()) / n
    empty = sum(e.passed for _, e in executions.values()) / n
    record_property("pass@1 canonical", canonical)
    record_property("pass@1 empty", empty)
    assert (canonical, empty) == (1.0, 0.0)
