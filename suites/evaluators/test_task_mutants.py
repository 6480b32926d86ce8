"""Every test in fixtures/tasks is meaningful: it rejects at least 90% of the non-equivalent mutants of its
canonical solution (harness/eval/mutate.py: operators swapped, constants +-1, lines deleted, pipeline stages
removed, ...). Mutants reviewed as equivalent are recorded, each with its reason, in
fixtures/tasks/mutants-equivalent.json; every task's score ships in fixtures/tasks/mutation-scores.json.

By default a sample of tasks that changes every day (HARNESS_MUTANT_SAMPLE_SEED overrides the day; at most
MAX_SAMPLE tasks and about SAMPLE_MUTANTS mutants, which keeps the run within its CI budget) runs all its
mutants, and each sampled task must score at least 90% and exactly what the shipped file says.
HARNESS_MUTANTS=full runs every task; HARNESS_MUTATION_JSON=PATH then writes the scores in the shipped
format (copy it over fixtures/tasks/mutation-scores.json after a change to a task; `harness mutate
--write-scores` does the same). Mutants only ever run in the bubblewrap sandbox: a mutant of a
file-deleting script can delete the wrong files."""
from __future__ import annotations

import datetime
import hashlib
import json
import os

import pytest

from harness.errors import UsageError
from harness.eval.mutate import OPERATORS, generate, run_suite, select
from harness.eval.mutation_scores import (EQUIVALENTS, SCORES, THRESHOLD, check_scores, equivalents_hash,
                                          load_equivalents, load_scores, score_file, summary, task_hash)
from harness.eval.tasks import DEFAULT_TASKS, load_suite

FULL = os.environ.get("HARNESS_MUTANTS") == "full"
MUTANT_WALL_S = 3.0  # every task's tests take well under a second; a mutant that loops is cut off here
MAX_SAMPLE, SAMPLE_MUTANTS = 10, 400  # about 0.07 s a mutant with 2 sandboxes on 2 cores
TASK_IDS = sorted(f"{d.parent.name}/{d.name}" for d in DEFAULT_TASKS.glob("*/*") if (d / "solution.sh").is_file())

SNIPPET = """\
if [ $# -ne 2 ] || [ -z "$1" ]; then
    echo "usage: x A B" >&2
    exit 2
fi
total=$(( $1 + 10 ))
# a comment: -eq 5 && 7
grep -c "a b" "$2" | sort >> out.txt
awk '{ s += $1 * 2 } END { printf "%d\\n", s }' "$2"
while [ "$total" -gt 0 ]; do total=$((total - 1)); done
"""


def _ops(mutants, op):
    return {m.description for m in mutants if m.operator == op}


def test_operators_on_a_snippet():
    ms = generate(SNIPPET)
    assert {m.operator for m in ms} == set(OPERATORS) - {"case_pattern"}
    assert "'-ne' -> '-eq'" in _ops(ms, "compare") and "'-gt' -> '-le'" in _ops(ms, "compare")
    assert {"'+' -> '-'", "'*' -> '/'", "'+=' -> '-='"} <= _ops(ms, "arith")
    assert "'||' -> '&&'" in _ops(ms, "logic")
    assert "'-z' -> '-n'" in _ops(ms, "test_flag")
    assert "'>>' -> '>'" in _ops(ms, "redirect")
    assert "remove stage 'sort >> out.txt'" in _ops(ms, "pipe_stage")
    assert {"'if ' -> 'if ! '", "'while ' -> 'until '"} <= _ops(ms, "negate")
    assert "'usage: x A B' -> ''" in _ops(ms, "string") and "'a b' -> ''" in _ops(ms, "string")
    assert {"'10' -> '11'", "'10' -> '9'", "'2' -> '3'"} <= _ops(ms, "constant")
    assert "delete 'exit 2'" in _ops(ms, "delete_line")
    # comments, printf formats inside awk and fd numbers in redirections are left alone
    assert all("# a comment" in m.source for m in ms)
    assert not any("'%' ->" in d for d in _ops(ms, "arith"))
    assert not any(m.operator == "constant" and ">&" in m.description for m in ms)
    assert all(m.source != SNIPPET for m in ms) and len({m.source for m in ms}) == len(ms)


def test_case_alternatives_and_multiline_pipelines():
    src = "case $1 in\n    a | b) echo ab ;;\n    *) echo other ;;\nesac\nprintf 'x\\n' |\n    sort |\n    uniq\n"
    ms = generate(src)
    assert _ops(ms, "case_pattern") == {"drop case alternative 'b'"}
    assert _ops(ms, "pipe_stage") == {"remove stage 'sort'", "remove stage 'uniq'"}
    assert any(m.source == src.replace("    *) echo other ;;\n", "") for m in ms)


def test_generation_and_selection_are_deterministic():
    src = (DEFAULT_TASKS / "file_handling" / "rotate_logs" / "solution.sh").read_text()
    ms = generate(src)
    assert ms == generate(src)
    picked = select(ms, 8)
    assert picked == select(generate(src), 8) and len(picked) == min(8, len(ms))
    present = {m.operator for m in ms}
    assert len({m.operator for m in picked}) == min(8, len(present)), "the cap is spread over the operators"
    assert select(ms, None) == ms


def test_mutant_keys_are_unique_and_survive_edits_elsewhere():
    src = "x=$(( $1 - 1 - 1 ))\necho $x\n"
    ms = generate(src)
    assert len({m.key for m in ms}) == len(ms)
    assert "arith: '-' -> '+' | x=$(( $1 - 1 - 1 )) #2" in {m.key for m in ms}
    moved = generate("# a new first line\n" + src + "echo done\n")
    assert {m.key for m in ms} <= {m.key for m in moved}, "a line added elsewhere leaves the keys alone"


# --- the shipped files: cheap checks, no mutant runs -------------------------------------------------------

def test_shipped_scores_cover_the_suite():
    suite = load_suite(DEFAULT_TASKS)
    shipped = load_scores(DEFAULT_TASKS)
    assert shipped is not None, f"fixtures/tasks/{SCORES} is missing: harness mutate --write-scores"
    assert shipped["suite"]["name"] == suite.name and shipped["suite"]["version"] == suite.version
    assert shipped["equivalents_sha256"] == equivalents_hash(DEFAULT_TASKS), \
        f"{EQUIVALENTS} changed since the scores were measured: harness mutate --write-scores"
    assert sorted(shipped["tasks"]) == TASK_IDS == sorted(t.task_id for t in suite.tasks)
    stale = [tid for tid in TASK_IDS if shipped["tasks"][tid]["task_hash"] != task_hash(DEFAULT_TASKS, tid)]
    assert not stale, ("these tasks changed since their score was measured: harness mutate "
                       "--write-scores " + " ".join(f"--task {t}" for t in stale))
    low = {tid: t["score"] for tid, t in shipped["tasks"].items() if t["score"] < THRESHOLD}
    assert not low, f"tasks whose tests reject under {THRESHOLD:.0%} of their non-equivalent mutants: {low}"
    for tid, t in shipped["tasks"].items():
        n = t["mutants"] - t["equivalent"]
        assert t["killed"] + len(t["survivors"]) == n and t["score"] == round(t["killed"] / n if n else 1.0, 4), tid


def test_recorded_equivalents_name_real_mutants_with_reasons():
    suite = load_suite(DEFAULT_TASKS)
    equivalents = load_equivalents(DEFAULT_TASKS)
    assert set(equivalents) <= set(TASK_IDS)
    by_id = suite.by_id()
    for tid, recorded in equivalents.items():
        keys = {m.key for m in generate(by_id[tid].canonical)}
        assert set(recorded) <= keys, f"{tid}: recorded equivalents no mutant has: {set(recorded) - keys}"
        assert all(len(reason) > 10 for reason in recorded.values()), f"{tid}: every equivalent needs its reason"


# --- running mutants --------------------------------------------------------------------------------------

def sample(task_ids: list[str], seed: str) -> list[str]:
    """A deterministic sample for `seed` (by default the day): tasks in a seed-dependent order, taken while the
    sample stays within MAX_SAMPLE tasks and SAMPLE_MUTANTS mutants (a task of more mutants than that can still
    be the first)."""
    suite = load_suite(DEFAULT_TASKS).by_id()
    order = sorted(task_ids, key=lambda t: hashlib.sha256(f"{seed}\0{t}".encode()).hexdigest())
    picked, n = [], 0
    for tid in order:
        k = len(generate(suite[tid].canonical))
        if len(picked) < MAX_SAMPLE and (not picked or n + k <= SAMPLE_MUTANTS):
            picked.append(tid)
            n += k
    return sorted(picked)


SEED = os.environ.get("HARNESS_MUTANT_SAMPLE_SEED") or datetime.date.today().isoformat()
RUN_IDS = TASK_IDS if FULL else sample(TASK_IDS, SEED)


def test_sample_is_deterministic_and_bounded():
    assert sample(TASK_IDS, "2026-01-01") == sample(TASK_IDS, "2026-01-01")
    assert sample(TASK_IDS, "2026-01-01") != sample(TASK_IDS, "2026-01-02")
    assert 1 <= len(sample(TASK_IDS, SEED)) <= MAX_SAMPLE


@pytest.fixture(scope="module")
def mutation_results():
    from harness.eval.execute import Executor
    from harness.sandbox.sandbox import Limits, Sandbox

    try:
        sandbox = Sandbox(limits=Limits(wall_s=MUTANT_WALL_S), slots=2)
    except UsageError as e:
        pytest.skip(f"mutants run only in the bubblewrap sandbox: {e}")
    suite = load_suite(DEFAULT_TASKS)
    full_suite = load_suite(DEFAULT_TASKS)
    suite.tasks = [t for t in suite.tasks if t.task_id in set(RUN_IDS)]
    with sandbox:
        results = run_suite(suite, Executor(sandbox), cap=None, workers=2,
                            equivalents=load_equivalents(DEFAULT_TASKS))
        out = summary(suite, results, sandbox.isolation, None)
    if FULL and os.environ.get("HARNESS_MUTATION_JSON"):
        from harness.report import atomic_write_text

        scores = score_file(full_suite, results)
        atomic_write_text(os.environ["HARNESS_MUTATION_JSON"], json.dumps(scores, indent=1) + "\n")
    return {r.task_id: r for r in results}, out


@pytest.mark.parametrize("task_id", RUN_IDS)
def test_tests_reject_the_mutants(mutation_results, task_id, record_property):
    r = mutation_results[0][task_id]
    record_property("mutants", f"{r.killed}/{r.run - r.equivalent} non-equivalent killed, {r.equivalent} equivalent")
    assert r.run > 0, "no mutant could be generated from the canonical solution"
    problems = check_scores(DEFAULT_TASKS, [r], load_scores(DEFAULT_TASKS))
    assert not problems, "\n".join(problems)


def test_mutation_summary(mutation_results, capsys):
    out = mutation_results[1]
    assert out["suite"]["name"] == "harness-bash-tasks" and out["suite"]["content_hash"].startswith("sha256:")
    with capsys.disabled():
        mode = "every task" if FULL else f"sample {SEED} of {len(RUN_IDS)} tasks"
        print(f"\nmutation ({mode}, all mutants): {out['mutants_killed']}/"
              f"{out['mutants_run'] - out['mutants_equivalent']} non-equivalent mutants rejected "
              f"({out['mutants_equivalent']} equivalent); suite {out['suite']['version']} "
              f"{out['suite']['content_hash']}")
        for t in out["tasks"]:
            if t["survivors"]:
                print(f"  {t['task_id']}: {t['killed']}/{t['run'] - t['equivalent']}; survived: "
                      + "; ".join(t["survivors"]))
    assert out["tasks_below_threshold"] == []
