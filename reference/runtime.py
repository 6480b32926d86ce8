"""Which MLX device and BLAS a process runs on, and the OpenBLAS preload for Linux CPU runs.

MLX's Linux CPU wheel links a bundled reference BLAS (netlib), ~30x slower on fp32 matmul than OpenBLAS.
A shared library can only replace it if it is loaded before MLX, so `ensure_fast_blas()` re-executes the
current process once with LD_PRELOAD pointing at the system OpenBLAS. Set HARNESS_BLAS=bundled to opt out.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

OPENBLAS_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3",
    "/usr/lib/aarch64-linux-gnu/openblas-pthread/libblas.so.3",
    "/usr/lib64/libopenblas.so.0",
)
_MARK = "HARNESS_BLAS_REEXEC"


def find_openblas() -> str | None:
    override = os.environ.get("HARNESS_OPENBLAS")
    if override:
        return override if Path(override).exists() else None
    return next((p for p in OPENBLAS_CANDIDATES if Path(p).exists()), None)


def openblas_coretype(cpuinfo: str | None = None) -> str | None:
    """The OpenBLAS kernel family this CPU supports, from its /proc/cpuinfo flags.

    OpenBLAS picks kernels by CPUID family/model. Virtual machines often report a model it does not know
    (here: family 6 model 207 with AVX-512), and OpenBLAS 0.3.21 then falls back to its "Prescott" SSE3
    kernels, about 6x slower on a 1024x1024 fp32 matmul than SkylakeX's on the same machine (measured:
    0.065 s vs 0.011 s). Choosing by instruction-set flags is safe: each family needs only the flags checked.
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    line = next((l for l in cpuinfo.splitlines() if l.startswith("flags")), "")
    flags = set(line.split(":", 1)[1].split()) if ":" in line else set()
    if {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        return "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


def preload_env(env: dict | None = None) -> dict:
    """A copy of `env` with OpenBLAS preloaded when available (for child processes), and its kernel family
    pinned to what the CPU's flags support unless OPENBLAS_CORETYPE is already set."""
    env = dict(os.environ if env is None else env)
    lib = find_openblas()
    if lib and sys.platform.startswith("linux") and env.get("HARNESS_BLAS") != "bundled":
        pre = env.get("LD_PRELOAD", "")
        if lib not in pre.split(":"):
            env["LD_PRELOAD"] = f"{lib}:{pre}" if pre else lib
        if not env.get("OPENBLAS_CORETYPE"):
            core = openblas_coretype()
            if core:
                env["OPENBLAS_CORETYPE"] = core
    return env


def ensure_fast_blas(argv: list[str] | None = None) -> None:
    """Re-exec this process with OpenBLAS preloaded if it is present and not yet loaded.

    Call before importing mlx. Does nothing off Linux, when opted out, or when OpenBLAS is absent
    (then `blas_info()` reports the bundled BLAS, so every report shows it)."""
    if not sys.platform.startswith("linux") or os.environ.get("HARNESS_BLAS") == "bundled":
        return
    if os.environ.get(_MARK) or "mlx.core" in sys.modules:
        return
    lib = find_openblas()
    if not lib or lib in os.environ.get("LD_PRELOAD", "").split(":"):
        return
    env = preload_env()
    env[_MARK] = "1"
    args = argv if argv is not None else [sys.executable, *sys.orig_argv[1:]]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(args[0], args, env)


def blas_info() -> dict:
    """What BLAS this process has mapped, read from /proc/self/maps (Linux) after mlx is imported."""
    info = {"name": "unknown", "library": None, "preloaded": bool(os.environ.get("LD_PRELOAD"))}
    if sys.platform == "darwin":
        info.update(name="accelerate", library="Accelerate.framework")
        return info
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return info
    libs = {line.split()[-1] for line in maps.splitlines() if ".so" in line and "/" in line}
    # Only a library preloaded ahead of MLX replaces the BLAS it links. Other BLAS copies in the process
    # (numpy's libscipy_openblas64_, torch's) use renamed symbols or serve only their own package, so
    # finding them mapped says nothing about MLX.
    mapped = {os.path.realpath(l) for l in libs}
    preloaded = [p for p in os.environ.get("LD_PRELOAD", "").split(":") if os.path.realpath(p) in mapped]
    bundled = sorted(l for l in libs if "mlx_cpu.libs" in l and "libblas" in l)
    if preloaded:
        lib, real = preloaded[0], os.path.realpath(preloaded[0])
        name = "mkl" if "mkl" in real else "openblas" if "openblas" in real else "preloaded"
        info.update(name=name, library=lib)
        if name == "openblas":
            info.update(coretype=os.environ.get("OPENBLAS_CORETYPE") or "auto",
                        threads=os.environ.get("OPENBLAS_NUM_THREADS") or "auto")
    elif bundled:
        info.update(name="reference-bundled", library=bundled[0])
    return info


def device_info() -> dict:
    import mlx.core as mx

    dev = mx.default_device()
    backend = "cpu"
    if dev.type == mx.gpu:
        backend = "cuda" if getattr(mx, "cuda", None) and mx.cuda.is_available() else "metal"
    out = {"device": str(dev), "backend": backend, "mlx_version": mx.__version__, "blas": blas_info()}
    return out
