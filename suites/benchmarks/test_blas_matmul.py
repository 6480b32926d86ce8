"""MLX CPU fp32 matmul with the bundled reference BLAS vs the system OpenBLAS (the fast CPU path).

pytest-benchmark times the matmul in this process (which conftest.py started with OpenBLAS preloaded);
the side-by-side comparison runs both variants in child processes in the same run and lands in
extra_info (and in --benchmark-json). The ratio, not a timed assertion, is the result."""
import mlx.core as mx
import pytest

from harness.perf import blasbench
from reference.runtime import blas_info, find_openblas


@pytest.fixture(scope="module")
def size(request):
    return 512 if request.config.getoption("--quick") else 1024


def test_process_uses_openblas_when_present():
    mx.eval(mx.ones((2, 2)) @ mx.ones((2, 2)))
    if find_openblas():
        assert blas_info()["name"] == "openblas", blas_info()
    else:
        pytest.skip("OpenBLAS not installed: apt-get install libopenblas0-pthread")


def test_matmul_fp32(benchmark, size, request):
    a = mx.random.normal((size, size))
    b = mx.random.normal((size, size))
    mx.eval(a, b)
    benchmark.extra_info.update(n=size, blas=blas_info()["name"], flops=2 * size ** 3)
    benchmark(lambda: mx.eval(a @ b))


def test_matmul_bundled_vs_openblas(benchmark, size, request):
    if not find_openblas():
        pytest.skip("OpenBLAS not installed: apt-get install libopenblas0-pthread")
    repeats = 2 if request.config.getoption("--quick") else 5
    res = benchmark.pedantic(blasbench.compare, kwargs=dict(n=size, repeats=repeats, warmup=1),
                             rounds=1, iterations=1)
    assert res["bundled"]["blas"]["name"] == "reference-bundled"
    assert res["openblas"]["blas"]["name"] == "openblas"
    # same result both ways (sum of an 8x8 corner of a 1024-deep fp32 product)
    assert res["max_abs_checksum_diff"] < 1e-2 * max(1.0, abs(res["openblas"]["checksum"]))
    benchmark.extra_info.update(n=size, speedup=res["speedup"],
                                bundled_median_s=sorted(res["bundled"]["samples"])[len(res["bundled"]["samples"]) // 2],
                                openblas_median_s=sorted(res["openblas"]["samples"])[len(res["openblas"]["samples"]) // 2])
    assert res["speedup"] > 1.0  # OpenBLAS must not be slower; the 20x target is read from the JSON
