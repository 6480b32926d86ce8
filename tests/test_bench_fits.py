"""harness.perf.bench.fits: the memory model that decides which benchmark configurations run, checked against
what an 80 GB H100 really did (results/gpu/h100/)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.perf.bench import BenchConfig, fits

ROOT = Path(__file__).resolve().parents[1]


def h100_env() -> dict:
    return json.loads((ROOT / "results/gpu/h100/bench-tiny-b16-s1024-bf16.json").read_text())["environment"]


def test_fp32_attention_is_not_fused_on_cuda():
    """MLX ran out of the H100's memory on medium 8x2048 fp32 (no cuDNN SDPA in fp32): it must not fit."""
    ok, why = fits(BenchConfig(preset="medium", batch=8, seq=2048, dtype="float32"), h100_env())
    assert not ok and "GPU memory" in why


def test_configurations_that_ran_on_the_h100_fit():
    env = h100_env()
    for preset, b, s, dt, ck in [("tiny", 16, 1024, "float32", False), ("medium", 16, 2048, "bfloat16", False),
                                 ("large", 8, 2048, "bfloat16", False), ("xlarge", 4, 2048, "bfloat16", True)]:
        ok, why = fits(BenchConfig(preset=preset, batch=b, seq=s, dtype=dt, grad_checkpoint=ck), env)
        assert ok, (preset, why)


def test_bandwidth_bound_counts_weights_and_kv_cache():
    """Batch-1 decode bound on the H100 (3.35 TB/s): bytes = multiplied weights + KV cache at the mean context."""
    from harness.perf.genbench import _bandwidth_bound
    from harness.perf.feasibility import decode_bytes_per_token
    from reference.config import get_config

    cfg = get_config("medium")
    tps, how = _bandwidth_bound(cfg, "bfloat16", h100_env(), 256 + 128)
    nbytes = decode_bytes_per_token(cfg, 384, 2)
    assert nbytes > 2 * 2 * cfg.n_layers * 384 * cfg.d_model  # the cache is in it
    assert 3.0e12 < tps * nbytes < 3.5e12 and "KV cache" in how
    tps32, _ = _bandwidth_bound(cfg, "float32", h100_env(), 384)
    assert tps32 * 2 == pytest.approx(tps)


def test_bench_memory_limit_labels_the_mlx_row_and_refuses_nonsense(tmp_path):
    from harness.cli import main

    out = tmp_path / "b.json"
    assert main(["bench", "--config", "small", "--batch", "2", "--seq", "32", "--warmup", "0", "--repeats", "1",
                 "--no-generate", "--memory-limit-gb", "0.5", "--out", str(out)]) == 0
    rows = [m for m in json.loads(out.read_text())["metrics"] if m["name"] == "train.tokens_per_s"]
    assert [m["labels"]["memory_limit_gb"] for m in rows] == [0.5]
    assert main(["bench", "--config", "small", "--quick", "--memory-limit-gb", "0", "--out", str(out)]) == 2
