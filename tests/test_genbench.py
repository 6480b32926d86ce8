"""harness.perf.genbench: the twin's generation benchmark runs in a process of its own, without the OpenBLAS
preload harness adds for MLX, on the same weights (handed over in a file), and reports as before."""
from __future__ import annotations

import pytest

from harness.perf.bench import BenchConfig, initial_weights, run_config
from harness.perf.genbench import bench_generate, twin_env, twin_generate

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

# the small preset with a 256-token vocabulary: 4 layers of 192, a second or two per process
BC = dict(preset="small", batch=1, seq=64, vocab_size=256, warmup=0, repeats=1)


def test_twin_env_drops_the_openblas_preload_and_keeps_the_rest(monkeypatch):
    from reference.runtime import _MARK, find_openblas

    lib = find_openblas() or "/usr/lib/libopenblas-test.so"
    monkeypatch.setattr("reference.runtime.find_openblas", lambda: lib)
    env = twin_env({"LD_PRELOAD": f"{lib}:/opt/other.so", "OPENBLAS_CORETYPE": "SkylakeX", _MARK: "1",
                    "OPENBLAS_NUM_THREADS": "1", "PATH": "/bin"})
    assert env == {"LD_PRELOAD": "/opt/other.so", "PATH": "/bin"}
    assert "LD_PRELOAD" not in twin_env({"LD_PRELOAD": lib})


def test_twin_in_its_own_process_gives_the_in_process_tokens_and_the_mlx_ones():
    bc = BenchConfig(framework="torch", **BC)
    weights = initial_weights(bc)
    per_n = twin_generate(bc, weights, 8, 6, None, ns=(1, 3))
    assert [d["n"] for _, d in per_n] == [1, 3]
    for (ms, d), n in zip(per_n, (1, 3)):
        by = {m["name"]: m for m in ms}
        assert by["gen.tokens_per_s"]["labels"]["n"] == n and by["gen.tokens_per_s"]["value"] > 0
        assert "in a process of its own" in by["gen.tokens_per_s"]["note"]
        assert d["process"]["separate"] and "openblas" not in (d["process"]["ld_preload"] or "")
        assert d["rows_equal_row0"] == n
        _, here = bench_generate(bc, weights, 8, 6, n=n)
        assert d["tokens"] == here["tokens"]
    _, mlx = bench_generate(BenchConfig(framework="mlx", **BC), weights, 8, 6, n=3)
    assert per_n[1][1]["tokens"] == mlx["tokens"]  # fp32: the twin's greedy tokens are MLX's


def test_run_config_sends_the_twin_to_its_process_and_says_so():
    ms, d = run_config(BenchConfig(framework="torch", **BC), {}, train=False, gen_prompt=8, gen_tokens=4, gen_n=(2,))
    assert [g["process"]["separate"] for g in d["generate"]] == [True]
    assert {m["name"] for m in ms} == {"gen.tokens_per_s", "gen.first_token_s"}


def test_a_failing_twin_process_raises_with_its_error():
    bc = BenchConfig(framework="torch", **BC)
    weights = initial_weights(bc)
    weights.pop("wte.weight")
    with pytest.raises(RuntimeError, match="(?s)in its process.*missing \\['wte.weight'\\]"):
        twin_generate(bc, weights, 8, 4, None)
