"""Every test in fixtures/tasks is meaningful: it rejects at least one mutant of its canonical solution
(harness/mutate.py: operators swapped, constants +-1, lines deleted, pipeline stages removed, ...).

By default each task's mutants (at most HARNESS_MUTANT_CAP, default 8, spread over the operators) run
until the first one is rejected, which keeps the suite within its CI budget. HARNESS_MUTANTS=full runs
all of them and reports a mutation score per task; HARNESS_MUTATION_JSON=PATH writes the results with the
suite's name, version and content hash. Mutants only ever run in the bubblewrap sandbox: a mutant of a
file-deleting script can delete the wrong files."""
from __future__ import annotations

import json
import os

import pytest

from harness.errors import UsageError
from harness.mutate import OPERATORS, generate, run_suite, select, summary
from harness.tasks import DEFAULT_TASKS, load_suite

CAP = int(os.environ.get("HARNESS_MUTANT_CAP", "8"))
FULL = os.environ.get("HARNESS_MUTANTS") == "full"
MUTANT_WALL_S = 3.0  # every task's tests take well under a second; a mutant that loops is cut off here
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
    picked = select(ms, CAP)
    assert picked == select(generate(src), CAP) and len(picked) == min(CAP, len(ms))
    present = {m.operator for m in ms}
    assert len({m.operator for m in picked}) == min(CAP, len(present)), "the cap is spread over the operators"


@pytest.fixture(scope="module")
def mutation_results(request):
    from harness.execute import Executor
    from harness.sandbox import Limits, Sandbox

    try:
        sandbox = Sandbox(limits=Limits(wall_s=MUTANT_WALL_S), slots=2)
    except UsageError as e:
        pytest.skip(f"mutants run only in the bubblewrap sandbox: {e}")
    suite = load_suite(DEFAULT_TASKS)
    with sandbox:
        results = run_suite(suite, Executor(sandbox), cap=CAP, workers=2, stop_early=not FULL)
        out = summary(suite, results, sandbox.isolation, CAP)
    if os.environ.get("HARNESS_MUTATION_JSON"):
        from harness.report import atomic_write_text

        atomic_write_text(os.environ["HARNESS_MUTATION_JSON"], json.dumps(out, indent=1) + "\n")
    return {r.task_id: r for r in results}, out


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_tests_reject_a_mutant(mutation_results, task_id, record_property):
    r = mutation_results[0][task_id]
    record_property("mutants", f"{r.killed}/{r.run} killed of {r.generated} generated")
    assert r.run > 0, "no mutant could be generated from the canonical solution"
    assert r.killed >= 1, "the tests accepted every mutant: " + "; ".join(r.survivors)


def test_mutation_summary(mutation_results, capsys):
    out = mutation_results[1]
    assert out["suite"]["name"] == "harness-bash-tasks" and out["suite"]["content_hash"].startswith("sha256:")
    with capsys.disabled():
        mode = "all capped mutants" if FULL else "until the first rejected mutant"
        print(f"\nmutation ({mode}, cap {CAP}): {out['mutants_killed']}/{out['mutants_run']} mutants rejected "
              f"over {len(out['tasks'])} tasks; suite {out['suite']['version']} {out['suite']['content_hash']}")
        if FULL:
            for t in out["tasks"]:
                if t["survivors"]:
                    print(f"  {t['task_id']}: {t['killed']}/{t['run']}; survived: " + "; ".join(t["survivors"]))
    assert out["tasks_without_kill"] == []
