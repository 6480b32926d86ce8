"""Parametrisation of the benchmark suites from pytest's own command line (options defined in the root
conftest.py): --preset, --dtype, --batch, --seq, --grad-checkpoint, --framework, --quick.

    pytest suites/benchmarks --preset tiny --batch 2 --seq 256 --dtype float32 --benchmark-json out.json

Configurations that cannot fit this machine are skipped with the reason."""
import itertools

import pytest



def _list_opt(config, name, default, cast=str):
    """A repeatable, comma-separable option as a list (default when not given)."""
    raw = config.getoption(name)
    if not raw:
        return list(default)
    return [cast(x.strip()) for item in raw for x in str(item).split(",") if x.strip()]


def _configs(config):
    quick = config.getoption("--quick")
    import mlx.core as mx

    gpu = mx.default_device() == mx.gpu
    # tiny (98.9M parameters) takes tens of seconds per training step on a 2-core CPU, so a CPU run includes
    # it only when asked (--preset small,tiny); on a GPU the full mode benchmarks both
    presets = _list_opt(config, "--preset", ["small"] if quick or not gpu else ["small", "tiny"])
    dtypes = _list_opt(config, "--dtype", ["bfloat16"] if gpu else ["float32"])
    batches = _list_opt(config, "--batch", [4] if quick else [4, 8], int)
    seqs = _list_opt(config, "--seq", [64] if quick else [128, 256], int)
    ckpts = _list_opt(config, "--grad-checkpoint", ["off"] if quick else ["off", "on"])
    fws = _list_opt(config, "--framework", ["mlx"] if quick else ["mlx", "torch"])
    return presets, dtypes, batches, seqs, ckpts, fws


def pytest_generate_tests(metafunc):
    if "bench_config" not in metafunc.fixturenames:
        return
    from harness.perf.bench import BenchConfig

    presets, dtypes, batches, seqs, ckpts, fws = _configs(metafunc.config)
    quick = metafunc.config.getoption("--quick")
    params, ids = [], []
    gen = "gen_only" in metafunc.fixturenames
    for p, d, b, s, c, f in itertools.product(presets, dtypes, batches, seqs, ckpts, fws):
        if gen and (c == "on" or b != batches[0]):
            continue  # generation is batch 1 and has no backward pass
        if f not in ("mlx", "torch", "torch-compile"):
            raise pytest.UsageError(f"--framework {f!r}: choose mlx, torch or torch-compile")
        params.append(BenchConfig(preset=p, batch=b, seq=s, dtype=d, grad_checkpoint=c == "on", framework=f,
                                  warmup=1 if quick else 2, repeats=2 if quick else 5))
        ids.append(f"{p}-{f}-b{b}-s{s}-{d}-ckpt_{c}")
    metafunc.parametrize("bench_config", params, ids=ids)


@pytest.fixture(scope="session")
def environment():
    from harness.environment import fingerprint

    return fingerprint()


@pytest.fixture
def round_timers(benchmark):
    """(train timer, generation timer) that make each pytest-benchmark round one timed training step or one
    generation, so pytest-benchmark's own stats (and --benchmark-compare-fail) are per step, not of the whole
    set-up, compile and warm-up. The training timer keeps the loop's pipelining (harness.perf.timing.Stepper)."""
    from harness.perf.timing import Stepper

    def train(dispatch, wait, *, warmup, repeats):
        st = Stepper(dispatch, wait, warmup)
        benchmark.pedantic(st.step, rounds=repeats, iterations=1)
        return st.close()

    def generate(run, *, warmup, repeats):
        out = []
        benchmark.pedantic(lambda: out.append(run()), rounds=repeats, warmup_rounds=warmup, iterations=1)
        return out[warmup:]

    return train, generate
