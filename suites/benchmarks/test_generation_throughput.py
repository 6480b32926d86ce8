"""Generation: greedy decode tokens/s (batch 1, or n rows of one prompt with --gen-n) and time to first token with the KV cache, per preset and
framework, from the same initial weights. Each pytest-benchmark round is one generation."""
import math

import pytest

from harness.perf.bench import initial_weights
from harness.perf.genbench import bench_generate


@pytest.fixture
def gen_only():
    return True


def pytest_generate_tests(metafunc):
    if "gen_n" in metafunc.fixturenames:  # --gen-n: rows of one prompt decoded together (pass@k sampling)
        metafunc.parametrize("gen_n", metafunc.config.getoption("--gen-n") or [1], ids=lambda n: f"n{n}")


def test_generation_throughput(benchmark, bench_config, environment, gen_only, round_timers, gen_n):
    if bench_config.framework == "torch-compile":
        pytest.skip("generation is measured for mlx and eager torch")
    weights = None
    if bench_config.framework != "mlx":
        pytest.importorskip("torch")
        _skip_unfair_twin()
        weights = initial_weights(bench_config)
    new = 16 if bench_config.repeats <= 2 else 64
    # one pytest-benchmark round per generation (harness bench times the same runs)
    metrics, details = bench_generate(bench_config, weights, prompt_len=bench_config.seq, new_tokens=new,
                                      timer=round_timers[1], n=gen_n)
    by = {m["name"]: m for m in metrics}
    assert by["gen.tokens_per_s"]["value"] > 0 and math.isfinite(by["gen.tokens_per_s"]["value"])
    assert 0 < by["gen.first_token_s"]["value"] < 60
    benchmark.extra_info.update(bench_config.labels())
    benchmark.extra_info.update({k: by[k]["value"] for k in by},
                                tokens_per_s_samples=by["gen.tokens_per_s"]["samples"],
                                first_token_samples=by["gen.first_token_s"]["samples"])


def _skip_unfair_twin():
    """On a CPU, in a process with OpenBLAS preloaded for MLX and OpenBLAS's threads on, PyTorch's decoding
    collapses (10-30x slower than alone: results/gpu/NOTES.md, session 5, CPU); a round timed here would measure
    that, not the twin. `harness bench --twin` runs the twin in a process of its own (harness.perf.genbench)."""
    import mlx.core as mx

    from reference.runtime import blas_info

    if mx.default_device() == mx.gpu:
        return
    blas = blas_info()
    if blas.get("name") == "openblas" and blas.get("threads") != "1":
        pytest.skip("the PyTorch twin's CPU decoding collapses beside MLX's preloaded OpenBLAS with its threads on; "
                    "run with OPENBLAS_NUM_THREADS=1, or use `harness bench --twin` (the twin in its own process)")
