"""MLX CPU matmul speed with the bundled reference BLAS vs the system OpenBLAS, side by side.

The BLAS a process uses is fixed when it starts (LD_PRELOAD), so each variant runs in a child process:
`python -m harness.perf.blasbench --child N REPEATS` prints one JSON line."""
from __future__ import annotations

import json
import os
import subprocess
import sys


def _child(n: int, repeats: int, warmup: int) -> dict:
    import mlx.core as mx

    from reference.runtime import blas_info

    from .timing import timeit

    mx.random.seed(0)
    a = mx.random.normal((n, n))
    b = mx.random.normal((n, n))
    mx.eval(a, b)
    out = {}
    t = timeit(lambda: mx.eval(a @ b), warmup=warmup, repeats=repeats)
    c = a @ b
    mx.eval(c)
    out["checksum"] = float(mx.sum(c[:8, :8]).item())
    out.update(blas=blas_info(), samples=t.samples, n=n, flops=2.0 * n ** 3, device=str(mx.default_device()))
    return out


def run_variant(variant: str, n: int = 1024, repeats: int = 5, warmup: int = 2, timeout: float = 600) -> dict:
    """variant 'bundled' (MLX as shipped) or 'openblas' (system OpenBLAS preloaded)."""
    from reference.runtime import find_openblas, preload_env

    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env["HARNESS_BLAS_REEXEC"] = "1"  # the child must not re-exec itself
    if variant == "openblas":
        if not find_openblas():
            return {"variant": variant, "skipped": "OpenBLAS not found (apt-get install libopenblas0-pthread)"}
        env.pop("HARNESS_BLAS", None)
        env = preload_env(env)
    elif variant == "bundled":
        env["HARNESS_BLAS"] = "bundled"
    else:
        raise ValueError(variant)
    r = subprocess.run([sys.executable, "-m", "harness.perf.blasbench", "--child", str(n), str(repeats), str(warmup)],
                       capture_output=True, text=True, env=env, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"blas benchmark child ({variant}) failed: {r.stderr[-2000:]}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    res["variant"] = variant
    return res


def compare(n: int = 1024, repeats: int = 5, warmup: int = 2) -> dict:
    """Both variants, one after the other in this run; speedup = median(bundled) / median(openblas)."""
    import statistics

    res = {v: run_variant(v, n, repeats, warmup) for v in ("bundled", "openblas")}
    b, o = res["bundled"], res["openblas"]
    if "samples" in b and "samples" in o:
        res["speedup"] = statistics.median(b["samples"]) / statistics.median(o["samples"])
        res["max_abs_checksum_diff"] = abs(b["checksum"] - o["checksum"])
    return res


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        print(json.dumps(_child(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))))
    else:
        print(json.dumps(compare(), indent=2))
