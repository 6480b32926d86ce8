"""The environment fingerprint every report carries: OS, CPU, RAM, GPU, Python, MLX backend and device,
BLAS actually mapped, package versions, and the git commit with a dirty flag."""
from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("mlx", "numpy", "tokenizers", "safetensors", "torch", "bashlex", "sacrebleu", "jsonschema")
ROOT = Path(__file__).resolve().parent.parent


def _cpu() -> dict:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags, mhz = [], None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") and not flags:
                have = set(line.split(":", 1)[1].split())
                flags = sorted(f for f in have if f.startswith(("avx", "fma", "amx", "sse4", "asimd", "sve")))
            elif line.startswith("cpu MHz") and mhz is None:
                mhz = float(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    if sys.platform == "darwin":  # platform.processor() says "arm"; the brand string names the chip
        try:
            model = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                   text=True, timeout=5).stdout.strip() or model
        except (OSError, subprocess.SubprocessError):
            pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"model": model, "cores": cores, "arch": platform.machine(), "flags": flags, "mhz": mhz}


def _ram() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return None


@functools.lru_cache(maxsize=1)
def _gpus() -> list[dict] | None:
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    gpus = []
    for line in out.strip().splitlines():
        parts = [x.strip() for x in line.split(",")]
        if len(parts) == 3:
            gpus.append({"name": parts[0], "memory_bytes": int(float(parts[1]) * 2**20), "driver": parts[2]})
    return gpus or None


def git_info(root: Path = ROOT) -> dict:
    """The commit and dirty flag; HARNESS_GIT_COMMIT / HARNESS_GIT_DIRTY stand in where the tree was copied
    without its .git (the lent GPU machines receive a working tree only)."""
    if os.environ.get("HARNESS_GIT_COMMIT"):
        return {"commit": os.environ["HARNESS_GIT_COMMIT"], "dirty": os.environ.get("HARNESS_GIT_DIRTY", "0") == "1"}
    def g(*a):
        return subprocess.run(["git", "-C", str(root), *a], capture_output=True, text=True, timeout=10)

    try:
        c = g("rev-parse", "HEAD")
        if c.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = bool(g("status", "--porcelain", "--untracked-files=no").stdout.strip())
        return {"commit": c.stdout.strip(), "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _versions() -> dict:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def _mlx() -> dict:
    try:
        from reference.runtime import device_info

        d = device_info()
        return {"version": d["mlx_version"], "backend": d["backend"], "device": d["device"]}, d["blas"]
    except ImportError as e:
        return {"version": None, "backend": None, "device": None, "error": str(e)}, {"name": "unknown"}


def fingerprint() -> dict:
    mlx_info, blas = _mlx()
    return {
        "os": {"system": platform.system(), "release": platform.release(), "platform": platform.platform()},
        "cpu": _cpu(),
        "ram_bytes": _ram(),
        "gpu": _gpus(),
        "python": sys.version.split()[0],
        "mlx": mlx_info,
        "blas": blas,
        "packages": _versions(),
    }


def hardware_label(env: dict) -> str:
    """One line naming the hardware: what every figure is stated next to."""
    gpu = env.get("gpu") or []
    backend = (env.get("mlx") or {}).get("backend")
    if gpu and backend in ("cuda", None):
        g = gpu[0]
        return f"{len(gpu)}x {g['name']}" if len(gpu) > 1 else g["name"]
    cpu = env.get("cpu", {})
    blas = (env.get("blas") or {}).get("name", "?")
    return f"{cpu.get('model', '?')} ({cpu.get('cores', '?')} cores, BLAS {blas})"
