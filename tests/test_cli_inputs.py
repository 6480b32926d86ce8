"""Wrong inputs a new user gives every command: nothing a user points --out at is destroyed, a run that scored
nothing or failed half-way is not a success, and each mistake ends in exit 2 with one line naming the input
and what to do (never a traceback). Real CLI (in process where it can be), tiny suites, a 2-layer model."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from test_eval_cli import TASKS, make_suite, samples_file  # noqa: E402
from train_fixtures import TINY_MODEL, make_data_dir, tiny_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BWRAP = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")


def cli(capsys, *args) -> tuple[int, str]:
    """Exit status and stderr of `harness ARGS` run in this process."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:  # argparse's own usage errors
        code = e.code
    return code, capsys.readouterr().err


def refused(code: int, err: str, *words: str) -> None:
    """Exit 2 with one line on stderr that holds every word."""
    lines = [l for l in err.splitlines() if l.strip()]
    assert code == 2, err
    assert "Traceback" not in err and len(lines) == 1, err
    for w in words:
        assert w in err, (w, err)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A valid harness report (kind bench, no metrics)."""
    from harness.report import make_report, write_report

    p = tmp_path_factory.mktemp("rep") / "bench.json"
    write_report(make_report("bench", {"preset": "small"}, []), p)
    return p


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data_dir(tmp_path_factory.mktemp("data"), bash_docs=120)


def write_config(path: Path, **kw) -> Path:
    d = {"preset": "small", "model": dict(TINY_MODEL), "steps": 2, "batch_size": 2, "seq_len": 16, "lr": 3e-3,
         "warmup": 1, "eval_every": 2, "eval_batches": 1, "save_every": 2, "dropout": 0.0, "compile": False}
    d.update(kw)
    path.write_text(json.dumps(d))
    return path


# --- --out equal to an input --------------------------------------------------------------------------------
def test_out_equal_to_an_input_is_refused(tmp_path, capsys, report, data):
    suite = make_suite(tmp_path / "tasks")
    samples = samples_file(tmp_path / "s.jsonl", [(t, TASKS[t][1]) for t in TASKS])
    prompts = tmp_path / "p.txt"
    prompts.write_text("# print hello\n")
    rep2 = tmp_path / "rep2.json"
    shutil.copyfile(report, rep2)
    claims = tmp_path / "claims.json"
    shutil.copyfile(ROOT / "fixtures" / "claims" / "seed-claims.json", claims)
    cases = [
        (samples, ["eval", "--samples", samples, "--tasks", suite, "--out", samples]),
        (prompts, ["generate", "--checkpoint", tmp_path / "none", "--prompts", prompts, "--out", prompts]),
        (prompts, ["generate", "--checkpoint", tmp_path / "none", "--prompts", prompts, "--report", prompts]),
        (report, ["compare", report, rep2, "--out", report]),
        (rep2, ["compare", report, rep2, "--out", rep2]),
        (report, ["scaling", report, "--out", report]),
        (claims, ["claims", "--claims", claims, "--reports", "--out", claims]),
        (report, ["claims", "--reports", report, "--out", report]),
        (samples, ["bench", "--config", "small", "--quick", "--out", samples]),  # not a report: not replaced
    ]
    for path, args in cases:
        before = path.read_bytes()
        code, err = cli(capsys, *args)
        flag = "--report" if "--report" in args else "--out"
        refused(code, err, flag, str(path))
        assert path.read_bytes() == before, args
    code, err = cli(capsys, "train", "--config", "small", "--data", data, "--out", data)
    refused(code, err, "--out", "--data")
    code, err = cli(capsys, "data", "--scripts", suite, "--no-text", "--out", suite, "--force")
    refused(code, err, "--out", "--scripts")
    assert (suite / "suite.json").is_file()


# --- unwritable --out, found before any work --------------------------------------------------------------
def _commands(tmp_path: Path, report: Path, data: Path, suite: Path):
    """(command line with OUT where the output goes, whether OUT is a directory)."""
    samples = samples_file(tmp_path / "s.jsonl", [(t, TASKS[t][1]) for t in TASKS])
    return [
        (["eval", "--samples", samples, "--tasks", suite, "--out", "OUT"], False),
        (["generate", "--checkpoint", tmp_path / "none", "--prompts", suite, "--out", "OUT"], False),
        (["generate", "--checkpoint", tmp_path / "none", "--prompt", "x", "--report", "OUT"], False),
        (["compare", report, report, "--out", "OUT"], False),
        (["scaling", report, "--out", "OUT"], False),
        (["claims", "--reports", "--out", "OUT"], False),
        (["bench", "--config", "small", "--quick", "--out", "OUT"], False),
        (["train", "--config", "small", "--data", data, "--out", "OUT"], True),
        (["data", "--scripts", suite, "--no-text", "--out", "OUT"], True),
        (["publish", report, "--out", "OUT", "--no-plots"], True),
        (["publish", report, "--out", tmp_path / "md", "--no-plots", "--site", "OUT"], True),
    ]


@pytest.mark.parametrize("where", ["under_a_file", "wrong_kind", "proc"])
def test_unwritable_out_is_refused_by_every_command(tmp_path, capsys, report, data, where):
    suite = make_suite(tmp_path / "tasks")
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep me\n")
    for args, is_dir in _commands(tmp_path, report, data, suite):
        if where == "under_a_file":
            out, words = a_file / "out.json", ["is under", "which is a file"]
        elif where == "wrong_kind":
            out, words = (a_file, ["is a file, not a directory"]) if is_dir else (tmp_path, ["is a directory"])
        else:
            out, words = (Path("/proc/harness-out"), ["cannot be written"]) if is_dir else \
                (Path("/proc/out.json"), ["cannot be written"])
        line = [out if a == "OUT" else a for a in args]
        code, err = cli(capsys, *line)
        flag = line[line.index(out) - 1]
        refused(code, err, flag, str(out), *words)
    assert a_file.read_text() == "keep me\n"
    code, err = cli(capsys, "eval", "--canonical", "--tasks", suite, "--out", "/proc/version/x.json")
    refused(code, err, "--out", "/proc/version")


# --- a run that scored nothing, or failed half-way ----------------------------------------------------------
@pytest.mark.parametrize("content, words", [
    (b"", ["is empty"]),
    (b"{oops\nnot json\n", ["2 malformed json"]),
    (b'{"task_id": "no/such", "completion": "echo"}\n', ["1 unknown task id", "arithmetic/add"]),
])
def test_eval_that_scores_nothing_keeps_the_old_report(tmp_path, capsys, report, content, words):
    suite = make_suite(tmp_path / "tasks")
    out = tmp_path / "r.json"
    shutil.copyfile(report, out)
    (tmp_path / "s.jsonl").write_bytes(content)
    code, err = cli(capsys, "eval", "--samples", tmp_path / "s.jsonl", "--tasks", suite, "--out", out)
    refused(code, err, "--samples", "nothing was scored", f"{out} was left as it was", *words)
    assert out.read_bytes() == report.read_bytes()


def test_eval_where_every_problem_is_bad(tmp_path, capsys):
    problems = tmp_path / "bad.jsonl"
    problems.write_text('{"name": "a"}\n{oops\n')
    samples = samples_file(tmp_path / "s.jsonl", [("a", "echo")])
    code, err = cli(capsys, "eval", "--samples", samples, "--tasks", problems, "--out", tmp_path / "r.json")
    refused(code, err, "--tasks", "none of its 2 problems can be used")
    assert not (tmp_path / "r.json").exists()


@BWRAP
def test_eval_with_a_sandbox_failing_mid_run_exits_1_and_keeps_the_good_report(tmp_path, capsys, monkeypatch,
                                                                               report):
    from harness.eval.execute import Execution, Executor

    suite = make_suite(tmp_path / "tasks")
    out = tmp_path / "r.json"
    shutil.copyfile(report, out)
    real, calls = Executor.run, []

    def flaky(self, task, completion, rejected=None):
        calls.append(task.task_id)
        if len(calls) == 1:
            return real(self, task, completion, rejected)
        return Execution("error", None, 0.0, "", "", detail="bwrap: cannot mount the work directory")

    monkeypatch.setattr(Executor, "run", flaky)
    code, err = cli(capsys, "eval", "--canonical", "--tasks", suite, "--no-check", "--no-quality", "--workers", "1",
                    "--out", out)
    assert code == 1 and "Traceback" not in err
    assert "2 of 3 programs could not run in the sandbox" in err and "cannot mount" in err
    assert out.read_bytes() == report.read_bytes()  # the good report stays
    failed = json.loads((tmp_path / "r.failed.json").read_text())
    assert failed["status"] == "partial"


# --- numbers and paths that ended in tracebacks or misleading messages -------------------------------------
@pytest.mark.parametrize("args, words", [
    (["--timeout", "inf"], ["--timeout inf", "not a finite number"]),
    (["--timeout", "nan"], ["--timeout nan"]),
    (["--timeout", "0.001"], ["--timeout 0.001", "too small", "at least 0.05"]),
    (["--workers", "100000"], ["--workers 100000", "at most"]),
])
def test_eval_numbers(tmp_path, capsys, args, words):
    suite = make_suite(tmp_path / "tasks")
    code, err = cli(capsys, "eval", "--canonical", "--tasks", suite, "--out", tmp_path / "r.json", *args)
    refused(code, err, *words)
    assert "namespace" not in err


def test_a_directory_where_a_file_is_expected(tmp_path, capsys, report):
    suite = make_suite(tmp_path / "tasks")
    code, err = cli(capsys, "eval", "--samples", tmp_path, "--tasks", suite, "--out", tmp_path / "r.json")
    refused(code, err, "--samples", "is a directory")
    code, err = cli(capsys, "compare", tmp_path, report)
    refused(code, err, "is a directory")
    code, err = cli(capsys, "claims", "--claims", tmp_path, "--reports")
    refused(code, err, "--claims", "is a directory")
    assert "does not exist" not in err


def test_generate_and_bench_numbers(tmp_path, capsys):
    code, err = cli(capsys, "generate", "--checkpoint", tmp_path, "--prompt", "x", "--temperature", "nan")
    refused(code, err, "--temperature nan")
    code, err = cli(capsys, "generate", "--checkpoint", tmp_path, "--prompt", "x", "--seed", "-5")
    refused(code, err, "--seed -5")
    out = tmp_path / "b.json"
    code, err = cli(capsys, "bench", "--config", "small", "--quick", "--out", out, "--dropout", "2")
    refused(code, err, "--dropout 2")
    assert "--seq" not in err
    for warmup in ("1e18", str(10 ** 18)):
        code, err = cli(capsys, "bench", "--config", "small", "--quick", "--out", out, "--warmup", warmup)
        assert code == 2 and "--warmup" in err and "Traceback" not in err
    assert not out.exists()


def test_configs_to_a_full_device():
    from reference.runtime import preload_env

    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "harness.cli", "configs"], stdout=full, stderr=subprocess.PIPE,
                           text=True, cwd=ROOT, env=preload_env(), timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "Exception ignored" not in r.stderr
    assert "cannot write to standard output" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("flag, value, words", [
    ("--seq-len", "-1", ["--seq-len", "at least 1"]),
    ("--lr", "nan", ["--lr", "finite"]),
    ("--lr", "inf", ["--lr", "finite"]),
    ("--batch-size", "1000000000", ["--batch-size 1000000000", "GiB", "--accum"]),
    ("--memory-limit-gb", "inf", ["--memory-limit-gb"]),
    ("--seed", "-1", ["--seed"]),
])
def test_train_numbers(tmp_path, capsys, data, flag, value, words):
    cfg = write_config(tmp_path / "c.json")
    code, err = cli(capsys, "train", "--config", cfg, "--data", data, "--out", tmp_path / "run", "--no-progress",
                    flag, value)
    refused(code, err, *words)
    assert not list((tmp_path / "run").glob("ckpt-*"))


def test_train_data_that_is_a_file(tmp_path, capsys, report):
    code, err = cli(capsys, "train", "--config", "small", "--data", report, "--out", tmp_path / "run")
    refused(code, err, "--data", "is a file, not a directory")


# --- checkpoints: --init of another shape, a corrupt newest checkpoint, a killed run -----------------------
@pytest.fixture(scope="module")
def run4(tmp_path_factory, data):
    """A 4-step run of the 2-layer model with checkpoints at steps 2 and 4."""
    from reference.trainer import train

    out = tmp_path_factory.mktemp("run4") / "run"
    train(tiny_config(steps=4, batch_size=2, seq_len=16, save_every=2, eval_every=4, eval_batches=1, compile=False),
          data, out, progress=False)
    return out


def test_init_of_another_shape_is_refused(tmp_path, capsys, data, run4):
    code, err = cli(capsys, "train", "--config", "tiny", "--data", data, "--init", run4, "--out", tmp_path / "fin",
                    "--steps", "1", "--no-progress")
    refused(code, err, "--init", "d_model=32", "tiny", "--config")
    assert not (tmp_path / "fin" / "report.json").exists()


@pytest.mark.parametrize("damage", ["weights", "state"])
def test_resume_with_a_corrupt_newest_checkpoint_names_the_intact_one(tmp_path, capsys, data, run4, damage):
    run = tmp_path / "run"
    shutil.copytree(run4, run)
    if damage == "weights":
        f = run / "ckpt-00000004" / "model.safetensors"
        f.write_bytes(f.read_bytes()[:100])
    else:
        (run / "ckpt-00000004" / "state.json").write_text("{cut")
    code, err = cli(capsys, "train", "--data", data, "--out", run, "--resume", "--steps", "6", "--no-progress")
    refused(code, err, "ckpt-00000004", "ckpt-00000002 (step 2) is intact", "--resume-from 2")
    code, err = cli(capsys, "train", "--data", data, "--out", run, "--resume-from", "2", "--steps", "6",
                    "--no-progress")
    assert code == 0, err
    from reference import checkpoint as ck

    assert [s for s, _ in ck.list_checkpoints(run)] == [2, 4, 6]
    assert ck.read_checkpoint(run / "ckpt-00000004").step == 4  # the corrupt one was replaced by a good one
    code, err = cli(capsys, "train", "--data", data, "--out", run, "--resume-from", "3", "--steps", "8")
    refused(code, err, "--resume-from 3", "2, 4, 6")


def test_a_killed_run_leaves_no_temporary_files(tmp_path, data):
    """SIGKILL in the middle of a checkpoint save; the next run into the folder removes what it left."""
    from reference.runtime import preload_env

    cfg = write_config(tmp_path / "c.json", steps=2, save_every=1)
    run = tmp_path / "run"
    env = {**preload_env(), "HARNESS_FAULT": "ckpt_sleep:60"}
    argv = [sys.executable, "-m", "harness.cli", "train", "--config", str(cfg), "--data", str(data), "--out", str(run),
            "--no-progress"]
    p = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list(run.glob(".tmp-ckpt-*")) and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.1)
        assert list(run.glob(".tmp-ckpt-*")), "the save never started"
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    (run / ".report.json.x1y2.tmp").write_text("{")  # a report being replaced when the kill came
    r = subprocess.run(argv, cwd=ROOT, env=preload_env(), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    stray = [p.name for p in run.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert stray == [] and (run / "ckpt-00000002").is_dir()


def test_demo_refuses_outputs_before_working(tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep me\n")
    code, err = cli(capsys, "demo", "--work", a_file / "w", "--results", tmp_path / "res")
    refused(code, err, "--work", "which is a file")
    code, err = cli(capsys, "demo", "--work", tmp_path / "w", "--results", "/proc/harness-demo")
    refused(code, err, "--results", "cannot be written")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("keep me\n")
    code, err = cli(capsys, "demo", "--work", mine, "--results", tmp_path / "res", "--force")
    refused(code, err, "--work", "thesis.tex", "refusing to delete")
    assert (mine / "thesis.tex").is_file() and not (tmp_path / "res").exists()


def test_a_diverged_continuation_keeps_the_earlier_train_report(tmp_path, capsys, monkeypatch, data, run4, report):
    run = tmp_path / "run"
    shutil.copytree(run4, run)
    shutil.copyfile(report, run / "report.json")
    monkeypatch.setenv("HARNESS_FAULT", "nan_at:5")
    code, err = cli(capsys, "train", "--data", data, "--out", run, "--resume", "--steps", "6", "--no-progress")
    assert code == 1 and "loss became nan" in err and "report.failed.json" in err
    assert (run / "report.json").read_bytes() == report.read_bytes()
    assert json.loads((run / "report.failed.json").read_text())["status"] == "failed"
