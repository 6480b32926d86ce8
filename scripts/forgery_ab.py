"""Run every forgery of suites/redteam/forgeries.py against the sandbox of another tree, to show what it scored
there (suites/redteam/test_forgery.py asserts that this tree scores each 0).

    git worktree add /tmp/old 5df9b37
    cd /tmp/old && PYTHONPATH=/tmp/old python THIS/scripts/forgery_ab.py THIS/suites/redteam /tmp/old > out.json

Prints JSON: the harness that ran, whether its judge was separated, each forgery's status, and how many passed."""
import json, sys, shutil, tempfile
from collections import Counter
from pathlib import Path
sys.path.insert(0, sys.argv[1])  # folder holding forgeries.py
from forgeries import FORGERIES, OWN_TASK, MULTIPL_E_TASK
import harness
from harness.eval.evaluate import evaluate
from harness.eval.execute import Executor
from harness.sandbox.sandbox import Limits, Sandbox
from harness.eval.tasks import Sample, SampleSet, load_suite
ROOT = Path(sys.argv[2])
tmp = Path(tempfile.mkdtemp())
shutil.copytree(ROOT / "fixtures/tasks" / OWN_TASK, tmp / "own" / OWN_TASK)
(tmp / "own/suite.json").write_text('{"name": "f"}')
suites = {"own": (load_suite(tmp / "own"), OWN_TASK), "multipl_e": (load_suite(ROOT / "fixtures/multipl_e/sample_problems.json"), MULTIPL_E_TASK)}
out = {}
with Sandbox(Limits(wall_s=10, cpu_s=8), slots=2) as box:
    for fmt, (suite, tid) in suites.items():
        names = [n for n, f in FORGERIES.items() if f.fmt == fmt]
        samples = [Sample(tid, FORGERIES[n].completion, i + 1, i) for i, n in enumerate(names)]
        rep = evaluate(suite, SampleSet("f", samples, Counter(), []), Executor(box), [1], workers=2, check=False, quality=False, progress=False)
        (t,) = [t for t in rep["details"]["tasks"] if t["task_id"] == tid]
        for n, s in zip(names, t["samples"]):
            out[n] = s["status"]
print(json.dumps({"harness": harness.__file__, "separated": box.isolation.get("judge", {}).get("separated"), "results": out, "passed": sum(v == "passed" for v in out.values()), "of": len(out)}, indent=1))
