"""`harness train` under faults: NaN/inf loss, Ctrl-C, SIGKILL at random moments, a full disk. Each is a real
subprocess of the command line on the tiny model; recovery is checked by loading and resuming."""
from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reference import checkpoint as ck
from reference.runtime import preload_env

sys.path.insert(0, str(Path(__file__).parent))
from test_train import harness, losses, write_config  # noqa: E402
from train_fixtures import make_data_dir  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data_dir(tmp_path_factory.mktemp("data"))


def start(*args, env=None):
    e = preload_env()
    e.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *map(str, args)], cwd=ROOT, env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def train_steps_logged(run: Path) -> int:
    try:
        return sum('"kind": "train"' in x for x in (run / "metrics.jsonl").read_text().splitlines())
    except FileNotFoundError:
        return 0


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path, data):
    cfg = write_config(tmp_path / "c.json", steps=10, save_every=4)
    out = tmp_path / "run"
    r = harness("train", "--config", cfg, "--data", data, "--out", out, "--no-progress", "--no-compile",
                env={"HARNESS_FAULT": "nan_at:6"})
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "loss became nan" in r.stderr and "at step 6" in r.stderr and "ckpt-00000004" in r.stderr
    assert [s for s, _ in ck.list_checkpoints(out)] == [4]
    assert json.loads((out / "report.json").read_text())["status"] == "failed"
    r = harness("train", "--data", data, "--out", out, "--resume", "--no-progress", "--no-compile")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["step"] == 10


def test_divergence_from_a_huge_learning_rate_is_caught(tmp_path, data):
    cfg = write_config(tmp_path / "c.json", steps=30, save_every=100, lr=1e6, warmup=0, grad_clip=0.0)
    r = harness("train", "--config", cfg, "--data", data, "--out", tmp_path / "run", "--no-progress", "--no-compile")
    assert r.returncode == 1 and "stopped without saving" in r.stderr and "lower --lr" in r.stderr, r.stderr
    assert ck.list_checkpoints(tmp_path / "run") == []


def test_ctrl_c_saves_then_exits(tmp_path, data):
    cfg = write_config(tmp_path / "c.json", steps=100000, save_every=100000, eval_every=100000)
    out = tmp_path / "run"
    p = start("train", "--config", cfg, "--data", data, "--out", out, "--no-progress", "--no-compile")
    deadline = time.time() + 120
    while train_steps_logged(out) < 3 and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "interrupted; saved" in err
    step = ck.read_checkpoint(out).step
    assert step >= 3 and step == train_steps_logged(out)
    assert json.loads((out / "report.json").read_text())["status"] == "partial"
    r = harness("train", "--data", data, "--out", out, "--resume", "--steps", step + 2, "--no-progress", "--no-compile")
    assert r.returncode == 0, r.stderr and json.loads(r.stdout)["step"] == step + 2


def test_sigkill_at_random_moments_then_resume_replays_the_uninterrupted_run(tmp_path, data):
    """Checkpoints every step; three SIGKILLs at random times (some land mid-save); after each the newest
    checkpoint loads and --resume continues. The final per-step losses equal an uninterrupted run's."""
    steps = 24
    cfg = write_config(tmp_path / "c.json", steps=steps, save_every=1, eval_every=1000, keep=2, decay_steps=steps)
    common = ["--data", data, "--no-progress", "--no-compile"]
    ref = harness("train", "--config", cfg, "--out", tmp_path / "ref", *common)
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "run"
    rng = random.Random(1234)
    kills = 0
    while kills < 3:
        resume = ck.latest_checkpoint(out) is not None
        before = ck.read_checkpoint(out).step if resume else 0
        if before >= steps - 3:
            break
        p = start("train", *(["--resume"] if resume else ["--config", cfg]), "--out", out, *common)
        while train_steps_logged(out) <= before and p.poll() is None:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.15))
        p.send_signal(signal.SIGKILL)
        p.communicate()
        kills += 1
        newest = ck.latest_checkpoint(out)
        if newest is not None:
            _, _, info = ck.load_for_inference(out)  # verifies every file's sha256
            assert info["step"] >= before
    r = harness("train", "--resume", "--out", out, *common)
    assert r.returncode == 0, r.stderr
    assert losses(out) == losses(tmp_path / "ref")


def test_full_disk_keeps_the_previous_checkpoint_and_says_so(tmp_path, data):
    cfg = write_config(tmp_path / "c.json", steps=6, save_every=2)
    out = tmp_path / "run"
    r = harness("train", "--config", cfg, "--data", data, "--out", out, "--no-progress", "--no-compile",
                env={"HARNESS_FAULT": "ckpt_enospc:2"})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "no space left on device" in r.stderr and "ckpt-00000002 is intact" in r.stderr
    assert [s for s, _ in ck.list_checkpoints(out)] == [2] and not list(out.glob(".tmp-*"))
    r = harness("train", "--data", data, "--out", out, "--resume", "--no-progress", "--no-compile")
    assert r.returncode == 0, r.stderr
