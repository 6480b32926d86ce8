"""Forgery red team: completions that try to be scored as passed without solving anything (forgeries.py), each
beside an honest control on the same task, through the real evaluation pipeline and sandbox, in parallel.

Every forgery must score 0 and every control pass; the judge's files and the host stay as they were and no
process is left behind. The verdict comes from the judge, which the candidate can neither debug, signal nor
read (sandbox.py); a cgroup caps the memory of the whole sandbox."""
import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest

from harness.eval.evaluate import evaluate
from harness.eval.execute import Executor
from harness.sandbox.sandbox import Limits, Sandbox
from harness.sandbox.supervise import uid_processes
from harness.eval.tasks import Sample, SampleSet, load_suite

sys.path.insert(0, str(Path(__file__).parent))
from forgeries import FORGERIES, MULTIPL_E_TASK, OWN_TASK  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.sandbox, pytest.mark.isolation]
WORKERS = 4


def _own_suite(tmp: Path) -> Path:
    """A suite of the own-format tasks the forgeries go after."""
    root = tmp / "own"
    for task in {f.task_id for f in FORGERIES.values() if f.fmt == "own"}:
        shutil.copytree(ROOT / "fixtures" / "tasks" / task, root / task)
    (root / "suite.json").write_text('{"name": "forgery", "version": "1"}')
    return root


def _multipl_e_control() -> str:
    for line in (ROOT / "fixtures" / "samples" / "multipl_e_reference.jsonl").read_text().splitlines():
        s = json.loads(line)
        if s["task_id"] == MULTIPL_E_TASK:
            return s["completion"]
    raise AssertionError(f"no reference completion for {MULTIPL_E_TASK}")


def _score(box, suite, control, fmt: str) -> dict:
    """Every forgery of this format beside an honest control (`control(task_id)`) on its task, through evaluate."""
    names, samples = [], []
    for name, f in FORGERIES.items():
        if f.fmt != fmt:
            continue
        for n, text in ((name, f.completion), (f"control after {name}", control(f.task_id))):
            names.append((f.task_id, n))
            samples.append(Sample(f.task_id, text, len(samples) + 1, len(samples)))
    report = evaluate(suite, SampleSet("forgery", samples, Counter(), []), Executor(box), [1], workers=WORKERS,
                      check=False, quality=False, progress=False)
    by_task = {t["task_id"]: iter(t["samples"]) for t in report["details"]["tasks"]}
    return {n: next(by_task[task]) for task, n in names}  # a task's samples come back in sample order


@pytest.fixture(scope="module")
def forged(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("forgery")
    own = load_suite(_own_suite(tmp))
    multipl_e = load_suite(ROOT / "fixtures" / "multipl_e" / "sample_problems.json")
    with Sandbox(Limits(wall_s=10, cpu_s=8), slots=WORKERS) as box:
        results = {**_score(box, own, lambda task: own.by_id()[task].canonical, "own"),
                   **_score(box, multipl_e, lambda task: _multipl_e_control(), "multipl_e")}
        uids, isolation = list(box.uids), box.isolation
    return {"results": results, "uids": uids, "isolation": isolation}


def test_there_are_at_least_12_forgeries_in_both_formats():
    kinds = Counter(f.fmt for f in FORGERIES.values())
    assert len(FORGERIES) >= 12 and kinds["own"] >= 4 and kinds["multipl_e"] >= 4


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_forgery_scores_zero(forged, name):
    r = forged["results"][name]
    assert r["status"] != "passed", (FORGERIES[name].what, r)
    assert r["leftover"] == 0, r


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_honest_control_beside_it_passes(forged, name):
    r = forged["results"][f"control after {name}"]
    assert r["status"] == "passed", r


def test_memory_forgeries_are_stopped_by_the_cgroup(forged):
    for name in ("memfd_hog", "process_hog"):
        r = forged["results"][name]
        assert r["status"] == "oom" and "memory cap" in r.get("detail", ""), r


def test_the_judge_was_separated(forged):
    iso = forged["isolation"]
    assert iso["judge"]["separated"] and iso["seccomp"]["loaded"], iso
    assert all("not separated" not in (r.get("detail") or "") for r in forged["results"].values())


def test_no_process_left_behind(forged):
    assert all(not uid_processes(u) for u in forged["uids"])


def test_fixture_tests_unchanged():
    """The rewrite forgeries went after copies in the sandbox; the suite's own files are as committed."""
    text = (ROOT / "fixtures" / "tasks" / OWN_TASK / "test.sh").read_text()
    assert "exit 0\nexit 0" not in text and text.startswith("#!/bin/bash")
