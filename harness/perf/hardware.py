"""Peak dense FLOP/s per dtype and memory bandwidth of common hardware, each with its source.

Every figure is *dense* (NVIDIA datasheets print tensor-core numbers "with sparsity"; those are halved here)
and per device. Apple figures are for the largest GPU configuration of each chip (an upper bound: a
24-core M1 Max has 3/4 of it), because a fingerprint does not say how many GPU cores a Mac has.
CPU entries are estimates derived from /proc/cpuinfo (cores x FMA units x SIMD lanes x 2 x clock) and
say so. Lookups: `lookup(name)`, `identify(environment)`, `peak_flops(environment, dtype)`,
`memory_bandwidth(environment)`.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

T = 1e12
G = 1e9
GiB = 2**30

DTYPES = {
    "fp32": "fp32", "float32": "fp32", "f32": "fp32", "float": "fp32",
    "tf32": "tf32",
    "bf16": "bf16", "bfloat16": "bf16",
    "fp16": "fp16", "float16": "fp16", "f16": "fp16", "half": "fp16",
    "fp8": "fp8", "float8": "fp8",
    "fp64": "fp64", "float64": "fp64", "double": "fp64",
}


def normalize_dtype(dtype: str) -> str | None:
    return DTYPES.get(str(dtype).strip().lower().replace("mx.", "").replace("torch.", ""))


def _norm(name: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", name.lower()).split())


@dataclass(frozen=True)
class Hardware:
    name: str
    vendor: str                     # "apple" | "nvidia" | "cpu"
    flops: dict                     # dtype -> dense peak FLOP/s
    bandwidth: float | None         # bytes/s
    memory_bytes: float | None      # largest memory configuration
    flops_source: str
    bandwidth_source: str
    patterns: tuple = field(default=(), compare=False)  # regexes on the normalized device name
    note: str = ""

    def peak(self, dtype: str) -> tuple[float, str] | None:
        d = normalize_dtype(dtype)
        if d is None or d not in self.flops:
            return None
        return self.flops[d], f"{self.name} {d} dense peak {self.flops[d] / T:.4g} TFLOP/s ({self.flops_source})"

    def max_peak(self, dtypes=("fp32", "tf32", "fp16", "bf16")) -> tuple[float, str]:
        """The highest peak over the dtypes a training run could use (most favourable to a claim)."""
        d = max((d for d in dtypes if d in self.flops), key=lambda d: self.flops[d])
        return self.flops[d], d


def _apple(name, cores, ghz, bw_gbs, mem_gb, flops_src, bw_src, pattern, tflops=None, note=""):
    # Apple GPU cores have 128 FP32 ALUs each doing one FMA (2 FLOP) per clock; FP16 runs at the same
    # rate on M1/M2/M3 (philipturner/metal-benchmarks, "FP16/FP32 ratio 1"). bf16 has no faster path.
    f = tflops * T if tflops else cores * 128 * 2 * ghz * G
    return Hardware(name, "apple", {"fp32": f, "fp16": f, "bf16": f}, bw_gbs * G, mem_gb * GiB,
                    flops_src, bw_src, (pattern,), note or f"{cores}-core GPU (largest configuration)")


_MB = "philipturner/metal-benchmarks README, Apple GPU table (clock x cores x 128 ALUs x 2)"
_M3 = "derived: cores x 128 ALUs x 2 FLOP x 1.398 GHz (M2's clock; Apple publishes no M3 GPU clock or TFLOPS: an estimate)"
APPLE = (
    _apple("Apple M1", 8, 1.278, 68.25, 16, f"Apple newsroom 2020-11-10 '2.6 teraflops'; {_MB}",
           "derived: LPDDR4X-4266 x 128-bit bus = 68.25 GB/s", r"\bm1\b", tflops=2.6),
    _apple("Apple M1 Pro", 16, 1.296, 200, 32, _MB, "Apple newsroom 2021-10-18 (M1 Pro: 200GB/s)", r"\bm1 pro\b"),
    _apple("Apple M1 Max", 32, 1.296, 400, 64, f"Apple M1 Max event figure '10.4 TFLOPS'; {_MB} gives 10.6",
           "Apple newsroom 2021-10-18 (M1 Max: 400GB/s)", r"\bm1 max\b", tflops=10.4),
    _apple("Apple M1 Ultra", 64, 1.296, 800, 128, f"Apple M1 Ultra event figure '21 TFLOPS'; {_MB} gives 21.2",
           "Apple newsroom 2022-03-08 (M1 Ultra: 800GB/s)", r"\bm1 ultra\b", tflops=21.0),
    _apple("Apple M2", 10, 1.398, 100, 24, _MB, "Apple newsroom 2022-06-06 (M2: 100GB/s)", r"\bm2\b"),
    _apple("Apple M2 Pro", 19, 1.398, 200, 32, _MB, "Apple newsroom 2023-01-17 (M2 Pro: 200GB/s)", r"\bm2 pro\b"),
    _apple("Apple M2 Max", 38, 1.398, 400, 96, _MB, "Apple newsroom 2023-01-17 (M2 Max: 400GB/s)", r"\bm2 max\b"),
    _apple("Apple M2 Ultra", 76, 1.398, 800, 192, _MB, "Apple newsroom 2023-06-05 (M2 Ultra: 800GB/s)",
           r"\bm2 ultra\b"),
    _apple("Apple M3", 10, 1.398, 100, 24, _M3, "Apple newsroom 2023-10-30 (M3: 100GB/s)", r"\bm3\b"),
    _apple("Apple M3 Pro", 18, 1.398, 150, 36, _M3, "Apple newsroom 2023-10-30 (M3 Pro: 150GB/s)", r"\bm3 pro\b"),
    _apple("Apple M3 Max", 40, 1.398, 400, 128, _M3, "Apple newsroom 2023-10-30 (M3 Max 40-core GPU: 400GB/s)",
           r"\bm3 max\b"),
    _apple("Apple M3 Ultra", 80, 1.398, 819, 512, _M3, "Apple newsroom 2025-03-05 (M3 Ultra: 819GB/s)",
           r"\bm3 ultra\b"),
)


def _nv(name, fp32, tf32, bf16, fp8, bw, mem_gb, src, patterns, note=""):
    flops = {"fp32": fp32 * T, "tf32": tf32 * T, "bf16": bf16 * T, "fp16": bf16 * T}
    if fp8:
        flops["fp8"] = fp8 * T
    return Hardware(name, "nvidia", flops, bw, mem_gb * 1e9, src, src, tuple(patterns), note)


_SPARSE = "; tensor-core figures are the datasheet's sparse numbers halved"
NVIDIA = (
    _nv("NVIDIA H100 PCIe", 51, 378, 756, 1513, 2.0e12, 80, "NVIDIA H100 Tensor Core GPU datasheet (PCIe)" + _SPARSE,
        [r"\bh100\b.*\bpcie\b"]),
    _nv("NVIDIA H100 NVL", 60, 417.5, 835.5, 1670.5, 3.9e12, 94, "NVIDIA H100 Tensor Core GPU datasheet (NVL)" + _SPARSE,
        [r"\bh100\b.*\bnvl\b"]),
    _nv("NVIDIA H100 SXM", 67, 494.5, 989.5, 1979, 3.35e12, 80, "NVIDIA H100 Tensor Core GPU datasheet (SXM)" + _SPARSE,
        [r"\bh100\b"], "nvidia-smi names it 'NVIDIA H100 80GB HBM3'"),
    _nv("NVIDIA H200 NVL", 60, 417.5, 835.5, 1670.5, 4.8e12, 141, "NVIDIA H200 Tensor Core GPU datasheet (NVL)" + _SPARSE,
        [r"\bh200\b.*\bnvl\b"]),
    _nv("NVIDIA H200 SXM", 67, 494.5, 989.5, 1979, 4.8e12, 141, "NVIDIA H200 Tensor Core GPU datasheet (SXM)" + _SPARSE,
        [r"\bh200\b"]),
    _nv("NVIDIA A100 PCIe 80GB", 19.5, 156, 312, 0, 1.935e12, 80, "NVIDIA A100 Tensor Core GPU datasheet" + _SPARSE,
        [r"\ba100\b.*\bpcie\b.*\b80", r"\ba100\b.*\b80gb\b.*\bpcie\b"]),
    _nv("NVIDIA A100 PCIe 40GB", 19.5, 156, 312, 0, 1.555e12, 40, "NVIDIA A100 Tensor Core GPU datasheet" + _SPARSE,
        [r"\ba100\b.*\bpcie\b"]),
    _nv("NVIDIA A100 SXM4 40GB", 19.5, 156, 312, 0, 1.555e12, 40, "NVIDIA A100 Tensor Core GPU datasheet" + _SPARSE,
        [r"\ba100\b.*\b40gb\b"]),
    _nv("NVIDIA A100 SXM4 80GB", 19.5, 156, 312, 0, 2.039e12, 80, "NVIDIA A100 Tensor Core GPU datasheet" + _SPARSE,
        [r"\ba100\b"]),
    _nv("NVIDIA L40S", 91.6, 183, 362.05, 733, 864e9, 48, "NVIDIA L40S datasheet" + _SPARSE, [r"\bl40s\b"]),
    _nv("NVIDIA L4", 30.3, 60, 121, 242.5, 300e9, 24, "NVIDIA L4 Tensor Core GPU datasheet" + _SPARSE, [r"\bl4\b"]),
    _nv("NVIDIA A10", 31.2, 62.5, 125, 0, 600e9, 24, "NVIDIA A10 Tensor Core GPU datasheet" + _SPARSE, [r"\ba10\b"]),
    _nv("NVIDIA GeForce RTX 4090", 82.6, 82.6, 165.2, 0, 1008e9, 24,
        "NVIDIA Ada Lovelace architecture whitepaper, appendix (FP16/BF16 tensor with FP32 accumulate, dense)",
        [r"\brtx 4090\b"]),
    _nv("NVIDIA GeForce RTX 3090", 35.6, 35.6, 71, 0, 936e9, 24,
        "NVIDIA Ampere GA102 whitepaper (FP16/BF16 tensor with FP32 accumulate, dense)", [r"\brtx 3090\b"]),
    _nv("NVIDIA V100 SXM2", 15.7, 15.7, 125, 0, 900e9, 32,
        "NVIDIA Tesla V100 datasheet (FP16 tensor 125 TFLOPS; no bf16/tf32: the fp16 figure is listed under both)",
        [r"\bv100\b"]),
    _nv("NVIDIA T4", 8.1, 8.1, 65, 0, 320e9, 16,
        "NVIDIA T4 datasheet (FP16 tensor 65 TFLOPS; no bf16/tf32: the fp16 figure is listed under both)", [r"\bt4\b"]),
)

TABLE: tuple[Hardware, ...] = APPLE + NVIDIA


def lookup(name: str) -> Hardware | None:
    """The table entry for a device name ('M1 Max', 'NVIDIA H100 80GB HBM3', 'A100-SXM4-40GB', ...)."""
    n = _norm(name)
    # Longest (most specific) pattern first: "m1 max" before "m1", "h100 pcie" before "h100".
    for hw in sorted(TABLE, key=lambda h: -max(len(p) for p in h.patterns)):
        if any(re.search(p, n) for p in hw.patterns):
            return hw
    return None


# --- CPUs: an estimate from /proc/cpuinfo -----------------------------------------------------------

def _cpuinfo_fields(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out.setdefault(k.strip(), v.strip())
    return out


def cpu_estimate(cpuinfo: str | None = None, cores: int | None = None) -> Hardware | None:
    """Peak FLOP/s of an x86 CPU estimated from its flags, clock and core count.

    fp32 FLOP/cycle/core = FMA units x SIMD fp32 lanes x 2. Assumptions, stated in the result: 2 FMA units
    per core (Intel server cores since Skylake-SP, Zen 2+ at 256 bits; some Xeon Silver/Bronze and client
    parts have 1), Zen 4 executes AVX-512 as 2 x 256 bits, bf16 doubles fp32 with AVX512_BF16 (VDPBF16PS),
    AMX-BF16 does 1,024 BF16 FLOP/cycle/core (Intel Sapphire Rapids). The clock is the one /proc/cpuinfo
    reports (base or current, not turbo), so turbo can exceed it; virtual machines may hide flags (AMX).
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    f = _cpuinfo_fields(cpuinfo)
    flags = set(f.get("flags", "").split())
    model = f.get("model name", "unknown CPU")
    vendor = f.get("vendor_id", "")
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    m = re.search(r"@\s*([\d.]+)\s*GHz", model)
    ghz = float(m.group(1)) if m else (float(f["cpu MHz"]) / 1000 if "cpu MHz" in f else None)
    if not ghz or not cores or not flags:
        return None
    if "avx512f" in flags:
        units, lanes, isa = (1, 16, "AVX-512 as 2x256-bit (Zen 4)") if vendor == "AuthenticAMD" else (2, 16, "AVX-512")
    elif "avx2" in flags and "fma" in flags:
        units, lanes, isa = 2, 8, "AVX2+FMA"
    elif "avx" in flags:
        units, lanes, isa = 1, 8, "AVX (separate add and mul ports)"
    else:
        units, lanes, isa = 1, 4, "SSE (separate add and mul ports)"
    per_core = units * lanes * 2
    fp32 = cores * per_core * ghz * G
    flops = {"fp32": fp32, "fp64": fp32 / 2}
    extra = []
    if "amx_bf16" in flags:
        flops["bf16"] = cores * 1024 * ghz * G
        extra.append("bf16 via AMX (1,024 FLOP/cycle/core)")
    elif "avx512_bf16" in flags:
        flops["bf16"] = 2 * fp32
        extra.append("bf16 2x fp32 via AVX512_BF16")
    if "amx_fp16" in flags:
        flops["fp16"] = cores * 1024 * ghz * G
    elif "avx512_fp16" in flags:
        flops["fp16"] = 2 * fp32
        extra.append("fp16 2x fp32 via AVX512_FP16")
    src = (f"estimate, not a datasheet: {cores} cores x {units} FMA unit(s) x {lanes} fp32 lanes ({isa}) x 2 FLOP "
           f"x {ghz:.3g} GHz from /proc/cpuinfo = {fp32 / G:.4g} GFLOP/s fp32"
           + (f"; {'; '.join(extra)}" if extra else "") + "; assumes 2 FMA units/core where stated")
    return Hardware(f"{model} ({cores} cores)", "cpu", flops, None, None, src,
                    "unknown: DRAM channels and speed are not visible from /proc/cpuinfo", (), "estimate")


def _local_cpu_model() -> str | None:
    try:
        return _cpuinfo_fields(Path("/proc/cpuinfo").read_text()).get("model name")
    except OSError:
        return None


# --- environments (harness.environment.fingerprint()) -------------------------------------------------

def identify(environment: dict) -> Hardware | None:
    """The hardware an environment fingerprint ran its MLX work on, or None if it is not in the table.

    cuda backend (or GPUs with unknown backend): the first GPU's name. metal: the chip named in
    `environment['chip']` or the CPU model (macOS reports e.g. 'Apple M1 Max'). cpu: an estimate from
    /proc/cpuinfo, only when the fingerprint's CPU model is this machine's (or it carries `cpu.flags`
    and `cpu.mhz`)."""
    env = environment or {}
    backend = (env.get("mlx") or {}).get("backend")
    gpus = env.get("gpu") or []
    cpu = env.get("cpu") or {}
    if backend == "cuda" or (backend is None and gpus):
        return lookup(gpus[0].get("name", "")) if gpus else None
    if backend == "metal" or (backend is None and "apple" in str(cpu.get("model", "")).lower()):
        return lookup(env.get("chip") or cpu.get("model", ""))
    if backend == "cpu" or backend is None:
        if cpu.get("flags") and cpu.get("mhz"):
            text = f"model name : {cpu.get('model', 'unknown CPU')}\ncpu MHz : {cpu['mhz']}\nflags : {' '.join(cpu['flags'])}\n"
            return cpu_estimate(text, cpu.get("cores"))
        local = _local_cpu_model()
        if local and cpu.get("model") == local:
            return cpu_estimate(None, cpu.get("cores"))
    return None


def peak_flops(environment: dict, dtype: str) -> tuple[float, str] | None:
    """(dense peak FLOP/s of ONE device, its source) for `dtype` ('float32', 'bf16', ...), or None.

    float32 on an NVIDIA GPU under MLX's CUDA backend is the TF32 tensor-core peak: MLX runs fp32 matmuls
    in TF32 unless MLX_ENABLE_TF32=0 (MLX docs, environment variables). Multiply by the number of devices
    a run used for a multi-GPU total."""
    hw = identify(environment)
    if hw is None:
        return None
    d = normalize_dtype(dtype)
    backend = ((environment or {}).get("mlx") or {}).get("backend")
    if d == "fp32" and hw.vendor == "nvidia" and backend == "cuda" and os.environ.get("MLX_ENABLE_TF32", "1") != "0":
        v, src = hw.peak("tf32")
        return v, src + "; MLX runs float32 matmuls as TF32 on CUDA by default (MLX_ENABLE_TF32=1)"
    return hw.peak(dtype)


def memory_bandwidth(environment: dict) -> tuple[float, str] | None:
    """(peak memory bandwidth in bytes/s of one device, its source), or None (CPUs: not knowable here)."""
    hw = identify(environment)
    if hw is None or hw.bandwidth is None:
        return None
    return hw.bandwidth, f"{hw.name} {hw.bandwidth / G:.4g} GB/s ({hw.bandwidth_source})"
