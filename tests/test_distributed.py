"""Data-parallel training through mx.distributed: 2 processes on this machine (ring backend over localhost,
started by `mlx.launch`) with the same global batch give the same per-step losses as one process.

Tolerance: 1e-5 relative per step. Each rank averages the loss and gradients of its half-batch and the
all-reduce averages the halves, instead of one mean over the whole batch: the same sum in a different fp32
order (observed differences are ~1e-7 relative)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reference.runtime import preload_env

sys.path.insert(0, str(Path(__file__).parent))
from test_train import harness, losses, write_config  # noqa: E402
from train_fixtures import make_data_dir  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = Path(sys.executable).parent / "mlx.launch"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data_dir(tmp_path_factory.mktemp("data"))


@pytest.mark.skipif(not (LAUNCH.exists() or shutil.which("mlx.launch")), reason="mlx.launch is not installed")
@pytest.mark.parametrize("accum", [1, 2])
def test_two_ring_processes_match_one_process(tmp_path, data, accum):
    cfg = write_config(tmp_path / "c.json", steps=6, save_every=3, eval_every=3, batch_size=4, accum=accum)
    args = ["train", "--config", cfg, "--data", data, "--no-progress", "--no-compile"]
    one = harness(*args, "--out", tmp_path / "one")
    assert one.returncode == 0, one.stderr
    launch = str(LAUNCH) if LAUNCH.exists() else shutil.which("mlx.launch")
    env = preload_env()
    # with accumulation, also gradients split over many small all-reduce buckets (the default packs all in one)
    env["HARNESS_DP_BUCKET_MB"] = "0.05" if accum == 2 else "1024"
    two = subprocess.run([launch, "--backend", "ring", "-n", "2", "--", sys.executable, "-m", "harness.cli",
                          *map(str, args), "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert two.returncode == 0, two.stderr + two.stdout
    a, b = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert [s for s, _ in b] == [1, 2, 3, 4, 5, 6]  # one record per step: only rank 0 writes
    for (_, x), (_, y) in zip(a, b):
        assert y == pytest.approx(x, rel=1e-5)
    va, vb = losses(tmp_path / "one", "val_loss"), losses(tmp_path / "two", "val_loss")
    assert [s for s, _ in va] == [s for s, _ in vb]
    for (_, x), (_, y) in zip(va, vb):
        assert y == pytest.approx(x, rel=1e-5)
    summaries = [json.loads(x) for x in two.stdout.splitlines() if x.startswith("{")]
    assert len(summaries) == 1  # rank 1 prints nothing and writes no report
    rep = json.loads((tmp_path / "two" / "report.json").read_text())
    assert rep["config"]["world_size"] == 2
    assert rep["details"]["tokens_per_step"] == 4 * accum * 32
    assert rep["details"]["allreduce_bucket_bytes"] == int(float(env["HARNESS_DP_BUCKET_MB"]) * 2 ** 20)


def test_bucket_size_from_the_environment():
    from reference.distributed import DEFAULT_BUCKET_MB, bucket_bytes

    assert bucket_bytes({}) == DEFAULT_BUCKET_MB * 2 ** 20
    assert bucket_bytes({"HARNESS_DP_BUCKET_MB": "32"}) == 32 * 2 ** 20
    for bad in ("lots", "0", "-4"):
        with pytest.raises(ValueError, match="HARNESS_DP_BUCKET_MB"):
            bucket_bytes({"HARNESS_DP_BUCKET_MB": bad})
