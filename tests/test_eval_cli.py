"""`harness eval` end to end: real CLI, real sandbox, tiny suites built in the test."""
import json
import sys
import types
from pathlib import Path

import pytest

from harness.cli import main
from harness.report import load_report

ROOT = Path(__file__).resolve().parent.parent
MULTIPL_E = ROOT / "fixtures" / "multipl_e" / "sample_problems.json"
MULTIPL_E_SAMPLES = ROOT / "fixtures" / "samples" / "multipl_e_reference.jsonl"

pytestmark = [pytest.mark.sandbox]

TASKS = {
    "arithmetic/add": ("# Print the sum of the two integer arguments.\n", 'echo $(( $1 + $2 ))\n',
                       '[ "$(./candidate.sh 2 3)" = 5 ] && [ "$(./candidate.sh -4 1)" = -3 ]\n', {}),
    "strings/upper": ("# Print the first argument in upper case.\n", 'printf "%s\\n" "${1^^}"\n',
                      '[ "$(./candidate.sh abC)" = ABC ] && [ "$(./candidate.sh "a b")" = "A B" ]\n', {}),
    "file_handling/count_lines": ("# Print the number of lines of the file named by $1.\n", 'wc -l < "$1"\n',
                                  '[ "$(./candidate.sh in.txt)" = 3 ]\n', {"in.txt": "a\nb\nc\n"}),
}


def make_suite(root: Path, tasks=TASKS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "suite.json").write_text(json.dumps({"name": "mini", "version": "0.1.0"}))
    for tid, (prompt, sol, test, files) in tasks.items():
        d = root / tid
        (d / "files").mkdir(parents=True)
        (d / "prompt.sh").write_text("#!/bin/bash\n" + prompt)
        (d / "solution.sh").write_text(sol)
        (d / "test.sh").write_text(test)
        for name, text in files.items():
            (d / "files" / name).write_text(text)
    return root


def samples_file(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps({"task_id": t, "completion": c}) + "\n" for t, c in rows))
    return path


def run_eval(tmp_path, *args, quality=False) -> tuple[int, dict | None]:
    out = tmp_path / "report.json"
    code = main(["eval", "--out", str(out), "--workers", "4", "--timeout", "5",
                 *([] if quality else ["--no-quality"]), *args])
    return code, (load_report(out) if out.exists() else None)


def metrics(report) -> dict:
    return {m["name"]: m["value"] for m in report["metrics"]}


def test_canonical_solutions_score_one(tmp_path, capsys):
    suite = make_suite(tmp_path / "tasks")
    code, r = run_eval(tmp_path, "--canonical", "--tasks", str(suite))
    assert code == 0 and r["kind"] == "eval" and r["status"] == "ok"
    m = metrics(r)
    assert m["eval.pass@1"] == 1.0 and m["eval.pass@1.sound"] == 1.0 and "eval.pass@10" not in m
    assert m["eval.pass@1.arithmetic"] == 1.0 and m["eval.tasks"] == 3 and m["eval.unsound_problems"] == 0
    cfg = r["config"]
    assert cfg["tasks"]["name"] == "mini" and cfg["tasks"]["content_hash"].startswith("sha256:")
    assert cfg["isolation"]["kind"] == "bwrap" and cfg["isolation"]["bwrap_version"]
    s = r["details"]["tasks"][0]["samples"][0]
    assert {"status", "exit_code", "stdout", "stderr", "duration_s"} <= set(s)
    assert "eval.pass@10 not reported" in r["details"]["notes"][0]
    assert "eval.pass@1=1.0000" in capsys.readouterr().out


def test_quality_metrics_are_in_the_report(tmp_path):
    pytest.importorskip("harness.eval.metrics.quality")
    suite = make_suite(tmp_path / "tasks")
    rows = [(t, TASKS[t][1]) for t in TASKS] + [(t, "if then\n") for t in TASKS]
    code, r = run_eval(tmp_path, "--samples", str(samples_file(tmp_path / "s.jsonl", rows)), "--tasks", str(suite),
                       "--no-check", quality=True)
    m = metrics(r)
    assert m["eval.syntax.bash_n"] == pytest.approx(0.5) and m["eval.pass@1"] == pytest.approx(0.5)
    assert m["eval.codebleu"] is not None and "eval.bleu" in m
    first = r["details"]["tasks"][0]["samples"]
    assert first[0]["quality"]["bash_n"] == "ok" and first[1]["quality"]["bash_n"] != "ok"
    assert first[1]["status"] == "syntax_error"


def test_empty_and_weak_completions(tmp_path):
    suite = make_suite(tmp_path / "tasks")
    rows = [(t, "") for t in TASKS] + [(t, "echo 5\n") for t in TASKS] + [(t, TASKS[t][1]) for t in TASKS]
    code, r = run_eval(tmp_path, "--samples", str(samples_file(tmp_path / "s.jsonl", rows)), "--tasks", str(suite),
                       "--k", "1,2,3,5")
    assert code == 0
    m = metrics(r)
    # Each task: 3 samples, exactly one passes ("echo 5" happens to be wrong for every test here).
    assert m["eval.pass@1"] == pytest.approx(1 / 3) and m["eval.pass@2"] == pytest.approx(2 / 3)
    assert m["eval.pass@3"] == 1.0 and "eval.pass@5" not in m
    assert m["eval.status.passed"] == 3 and m["eval.status.failed"] == 6

    code, r = run_eval(tmp_path, "--samples", str(samples_file(tmp_path / "e.jsonl", [(t, "") for t in TASKS])),
                       "--tasks", str(suite))
    assert metrics(r)["eval.pass@1"] == 0.0


def test_multipl_e_unsound_problems_are_reported_separately(tmp_path):
    code, r = run_eval(tmp_path, "--samples", str(MULTIPL_E_SAMPLES), "--tasks", str(MULTIPL_E))
    assert code == 0 and r["status"] == "partial"
    m = metrics(r)
    assert m["eval.unsound_problems"] == 2
    assert m["eval.pass@1"] == pytest.approx(5 / 6)  # sh_4 cannot parse; sh_5 runs a doc line but still passes
    assert m["eval.pass@1.sound"] == 1.0
    unsound = {u["task_id"]: u for u in r["details"]["unsound"]}
    assert set(unsound) == {"sh_4_repeat_word", "sh_5_first_word"}
    assert unsound["sh_4_repeat_word"]["unpassable"] and "not valid bash" in unsound["sh_4_repeat_word"]["reasons"][0]
    assert "runs as code" in unsound["sh_5_first_word"]["reasons"][0]
    effect = r["details"]["unsound_effect"]
    assert "2 of the 6" in effect and "caps eval.pass@k at 0.8333" in effect and "sound" in effect


def test_unsound_own_tasks_are_found(tmp_path):
    tasks = dict(TASKS)
    tasks["strings/lax"] = ("# Print anything.\n", "echo hi\n", "true\n", {})
    tasks["strings/wrong_solution"] = ("# Print 1.\n", "echo 2\n", '[ "$(./candidate.sh)" = 1 ]\n', {})
    suite = make_suite(tmp_path / "tasks", tasks)
    code, r = run_eval(tmp_path, "--canonical", "--tasks", str(suite))
    reasons = {u["task_id"]: " ".join(u["reasons"]) for u in r["details"]["unsound"]}
    assert set(reasons) == {"strings/lax", "strings/wrong_solution"}
    assert "trivial completion" in reasons["strings/lax"]
    assert "canonical solution does not pass" in reasons["strings/wrong_solution"]


def test_bad_sample_lines_are_counted(tmp_path):
    suite = make_suite(tmp_path / "tasks")
    p = tmp_path / "bad.jsonl"
    p.write_bytes(b'{"task_id": "arithmetic/add", "completion": "echo $(( $1 + $2 ))"}\n{oops\n\xff\n'
                  b'{"task_id": "nope/x", "completion": ""}\n{"completion": "x"}\n')
    code, r = run_eval(tmp_path, "--samples", str(p), "--tasks", str(suite))
    assert code == 0 and r["status"] == "partial"
    assert r["details"]["bad_samples"]["counts"] == {"malformed_json": 1, "invalid_utf8": 1, "unknown_task_id": 1,
                                                     "missing_field": 1}
    assert metrics(r)["eval.bad_sample_lines"] == 4 and metrics(r)["eval.pass@1"] == 1.0
    assert r["details"]["tasks_without_samples"] == ["file_handling/count_lines", "strings/upper"]


def test_limit_keeps_the_first_tasks(tmp_path):
    suite = make_suite(tmp_path / "tasks")
    rows = [(t, TASKS[t][1]) for t in TASKS]
    code, r = run_eval(tmp_path, "--samples", str(samples_file(tmp_path / "s.jsonl", rows)), "--tasks", str(suite),
                       "--limit", "1", "--no-check")
    assert [t["task_id"] for t in r["details"]["tasks"]] == ["arithmetic/add"]
    assert r["config"]["samples_outside_limit"] == 2 and metrics(r)["eval.bad_sample_lines"] == 0


@pytest.mark.parametrize("args, message", [
    (["--samples", "/nonexistent.jsonl"], "does not exist"),
    (["--canonical", "--k", "0"], "--k"),
    (["--canonical", "--tasks", str(MULTIPL_E)], "--canonical needs"),
    (["--canonical", "--tasks", "/nonexistent"], "does not exist"),
    (["--canonical", "--workers", "0"], "--workers"),
])
def test_usage_errors_exit_2(tmp_path, capsys, args, message):
    if "--tasks" not in args:
        args = [*args, "--tasks", str(make_suite(tmp_path / "tasks"))]
    code, _ = run_eval(tmp_path, *args)
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_missing_bwrap_refuses_unless_unsafe(tmp_path, monkeypatch, capsys):
    import harness.sandbox.sandbox as sb

    real = sb._which
    monkeypatch.setattr(sb, "_which", lambda name: None if name == "bwrap" else real(name))
    suite = make_suite(tmp_path / "tasks")
    code, r = run_eval(tmp_path, "--canonical", "--tasks", str(suite))
    assert code == 2 and r is None and "apt-get install bubblewrap" in capsys.readouterr().err
    code, r = run_eval(tmp_path, "--canonical", "--tasks", str(suite), "--unsafe-no-sandbox")
    assert code == 0 and metrics(r)["eval.pass@1"] == 1.0
    assert r["config"]["isolation"]["kind"] == "none" and "UNSAFE" in r["config"]["isolation"]["warning"]
    assert "WARNING" in capsys.readouterr().err


def test_checkpoint_generates_then_scores(tmp_path, monkeypatch):
    calls = {}

    from harness.models import Completions, Timing
    from harness.models.reference import ReferenceBackend

    def init(self, path, **kw):
        calls["path"] = path
        self.checkpoint = {"path": path, "step": 7, "stage": "pretrain", "tokenizer_sha256": "abc"}
        self.info = {"backend": "reference", "path": path, "weights_sha256": "0" * 64, "step": 7}

    def complete(self, prompt, n, stop, seed, sampling):
        calls.update(n=n, temperature=sampling.temperature, stop=stop)
        sols = {t[0]: t[1] for t in TASKS.values()}
        # One right answer and n-1 empty ones per prompt.
        return Completions([sols[prompt.split("\n", 1)[1]]] + [""] * (n - 1), Timing())

    monkeypatch.setattr(ReferenceBackend, "__init__", init)
    monkeypatch.setattr(ReferenceBackend, "complete", complete)
    suite = make_suite(tmp_path / "tasks")
    code, r = run_eval(tmp_path, "--checkpoint", str(tmp_path / "ckpt"), "--tasks", str(suite), "--n", "4",
                       "--temperature", "0.6", "--k", "1,4")
    assert code == 0 and calls["n"] == 4 and calls["temperature"] == 0.6
    m = metrics(r)
    assert m["eval.pass@1"] == pytest.approx(0.25) and m["eval.pass@4"] == 1.0
    written = tmp_path / "report.samples.jsonl"
    assert written.is_file()
    assert len(written.read_text().splitlines()) == 12
    assert r["config"]["sampling"]["n"] == 4 and r["config"]["checkpoint"]["step"] == 7
