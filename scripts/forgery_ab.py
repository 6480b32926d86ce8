"""Run every forgery of suites/redteam/forgeries.py against the sandbox of another tree, to show what it scored
there (suites/redteam/test_forgery.py asserts that this tree scores each 0).

    git worktree add /tmp/old 5df9b37
    cd /tmp/old && PYTHONPATH=/tmp/old python THIS/scripts/forgery_ab.py THIS/suites/redteam /tmp/old > out.json

Prints JSON: the harness that ran, whether its judge was separated, each forgery's status, and how many passed."""
import json, sys, shutil, tempfile
from collections import Counter
from pathlib import Path
sys.path.insert(0, sys.argv[1])  # folder holding forgeries.py
from forgeries import FORGERIES
import harness
try:
    from harness.eval.evaluate import evaluate
    from harness.eval.execute import Executor
    from harness.sandbox.sandbox import Limits, Sandbox
    from harness.eval.tasks import Sample, SampleSet, load_suite
except ImportError:  # a tree from before harness/ was split into rooms (e.g. 5df9b37)
    from harness.evaluate import evaluate
    from harness.execute import Executor
    from harness.sandbox import Limits, Sandbox
    from harness.tasks import Sample, SampleSet, load_suite
ROOT = Path(sys.argv[2])
tmp = Path(tempfile.mkdtemp())
for task in {f.task_id for f in FORGERIES.values() if f.fmt == "own"}:  # each own-format forgery's task, as ROOT has it
    shutil.copytree(ROOT / "fixtures/tasks" / task, tmp / "own" / task)
(tmp / "own/suite.json").write_text('{"name": "f"}')
suites = {"own": load_suite(tmp / "own"), "multipl_e": load_suite(ROOT / "fixtures/multipl_e/sample_problems.json")}
out = {}
with Sandbox(Limits(wall_s=10, cpu_s=8), slots=2) as box:
    for fmt, suite in suites.items():
        names = [n for n, f in FORGERIES.items() if f.fmt == fmt]
        samples = [Sample(FORGERIES[n].task_id, FORGERIES[n].completion, i + 1, i) for i, n in enumerate(names)]
        rep = evaluate(suite, SampleSet("f", samples, Counter(), []), Executor(box), [1], workers=2, check=False, quality=False, progress=False)
        by_sample = {(t["task_id"], smp["index"]): smp for t in rep["details"]["tasks"] for smp in t["samples"]}
        for i, n in enumerate(names):
            out[n] = by_sample[(FORGERIES[n].task_id, i)]["status"]
print(json.dumps({"harness": harness.__file__, "separated": box.isolation.get("judge", {}).get("separated"), "results": out, "passed": sum(v == "passed" for v in out.values()), "of": len(out)}, indent=1))
