"""The CPU fast path: OpenBLAS preloaded, with its kernel family chosen from the CPU's flags."""
import os
import subprocess
import sys

import pytest

from reference.runtime import find_openblas, openblas_coretype, preload_env

AVX512 = "flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512cd avx512bw avx512dq avx512vl\n"
AVX2 = "flags\t\t: fpu sse4_2 avx avx2 fma\n"
OLD = "flags\t\t: fpu sse sse2 sse3\n"


@pytest.mark.parametrize("cpuinfo,want", [(AVX512, "SkylakeX"), (AVX2, "Haswell"), (OLD, None), ("", None)])
def test_coretype_follows_the_instruction_set(cpuinfo, want):
    assert openblas_coretype(cpuinfo) == want


def test_preload_env_keeps_a_coretype_the_user_chose(monkeypatch):
    if not find_openblas():
        pytest.skip("OpenBLAS not installed: apt-get install libopenblas0-pthread")
    env = preload_env({"OPENBLAS_CORETYPE": "Haswell", "PATH": os.environ["PATH"]})
    assert env["OPENBLAS_CORETYPE"] == "Haswell"
    assert find_openblas() in env["LD_PRELOAD"].split(":")


def test_bundled_opt_out_changes_nothing():
    env = preload_env({"HARNESS_BLAS": "bundled", "PATH": os.environ["PATH"]})
    assert "LD_PRELOAD" not in env and "OPENBLAS_CORETYPE" not in env


def test_harness_processes_report_the_blas_they_mapped():
    if not find_openblas():
        pytest.skip("OpenBLAS not installed: apt-get install libopenblas0-pthread")
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "HARNESS_BLAS_REEXEC", "OPENBLAS_CORETYPE")}
    code = ("from reference.runtime import ensure_fast_blas; ensure_fast_blas();"
            "import mlx.core as mx, json; mx.eval(mx.ones((4, 4)) @ mx.ones((4, 4)));"
            "from reference.runtime import blas_info; print(json.dumps(blas_info()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    import json

    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["name"] == "openblas"
    assert info["coretype"] == (openblas_coretype() or "auto")


def test_other_packages_blas_copies_are_not_mistaken_for_mlx_s():
    # numpy ships libscipy_openblas64_ (renamed symbols) and torch its own BLAS: mapped, but not MLX's
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "OPENBLAS_CORETYPE")}
    env.update(HARNESS_BLAS="bundled")
    code = ("import numpy, mlx.core as mx, json; mx.eval(mx.ones((4, 4)) @ mx.ones((4, 4)));"
            "from reference.runtime import blas_info; print(json.dumps(blas_info()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    import json

    assert json.loads(out.stdout.strip().splitlines()[-1])["name"] == "reference-bundled"
