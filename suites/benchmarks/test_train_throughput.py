"""Training tokens/s, step time, peak memory and MFU per preset x batch x seq x dtype x checkpointing x
framework (the reference trainer's compiled step, and the PyTorch twin from the same weights).

Each pytest-benchmark round is one timed training step, pipelined as the training loop runs them (the next
step is queued before the current one is waited for), after the model is built, compiled and warmed up outside
any round: pytest-benchmark's stats and --benchmark-compare-fail are per step. Tokens/s, MFU and the rest land
in extra_info, so --benchmark-json / --benchmark-save keep everything. `harness bench` runs the same code
(harness/perf/bench.py) and writes a harness report."""
import math

import pytest

from harness.perf.bench import bench_train_mlx, bench_train_torch, fits, initial_weights


def _check(metrics, bc):
    by = {m["name"]: m for m in metrics}
    tps = by["train.tokens_per_s"]
    assert tps["value"] > 0 and all(math.isfinite(s) and s > 0 for s in tps["samples"])
    assert len(tps["samples"]) == bc.repeats
    st = by["train.step_time_s"]["stats"]
    assert st["min"] <= st["median"] <= st["max"]
    return by


def test_train_throughput(benchmark, bench_config, environment, round_timers):
    ok, why = fits(bench_config, environment)
    if not ok:
        pytest.skip(why)
    if bench_config.framework == "mlx":
        metrics, details = bench_train_mlx(bench_config, environment, timer=round_timers[0])
    else:
        pytest.importorskip("torch")
        metrics, details = bench_train_torch(bench_config, environment, initial_weights(bench_config),
                                             timer=round_timers[0])
    by = _check(metrics, bench_config)
    assert benchmark.stats.stats.rounds == bench_config.repeats
    losses = details["losses"]
    assert all(math.isfinite(x) for x in losses)
    benchmark.extra_info.update(bench_config.labels())
    benchmark.extra_info.update({k: by[k]["value"] for k in by},
                                step_time_samples=by["train.step_time_s"]["samples"], losses=losses,
                                hardware=environment["cpu"]["model"] if not environment.get("gpu") else environment["gpu"][0]["name"],
                                blas=environment["blas"]["name"])
