"""Training tokens/s, step time, peak memory and MFU per preset x batch x seq x dtype x checkpointing x
framework (the reference trainer's compiled step, and the PyTorch twin from the same weights).

pytest-benchmark times the whole measurement once (rounds=1); the per-step samples, tokens/s and the
rest land in extra_info, so --benchmark-json / --benchmark-save keep everything. `harness bench` runs the
same code (harness/perf/bench.py) and writes a harness report."""
import math

import pytest

from harness.perf.bench import fits, run_config


def _check(metrics, bc):
    by = {m["name"]: m for m in metrics}
    tps = by["train.tokens_per_s"]
    assert tps["value"] > 0 and all(math.isfinite(s) and s > 0 for s in tps["samples"])
    assert len(tps["samples"]) == bc.repeats
    st = by["train.step_time_s"]["stats"]
    assert st["min"] <= st["median"] <= st["max"]
    return by


def test_train_throughput(benchmark, bench_config, environment):
    ok, why = fits(bench_config, environment)
    if not ok:
        pytest.skip(why)
    if bench_config.framework != "mlx":
        pytest.importorskip("torch")
    metrics, details = benchmark.pedantic(run_config, args=(bench_config, environment),
                                          kwargs={"generate": False}, rounds=1, iterations=1)
    by = _check(metrics, bench_config)
    losses = details["train"]["losses"]
    assert all(math.isfinite(x) for x in losses)
    benchmark.extra_info.update(bench_config.labels())
    benchmark.extra_info.update({k: by[k]["value"] for k in by},
                                step_time_samples=by["train.step_time_s"]["samples"], losses=losses,
                                hardware=environment["cpu"]["model"] if not environment.get("gpu") else environment["gpu"][0]["name"],
                                blas=environment["blas"]["name"])
