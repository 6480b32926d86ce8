"""The hardware table: every entry sourced and sane, lookups by name and by environment fingerprint, and the
CPU estimate from /proc/cpuinfo flags."""
import pytest

from harness.perf import hardware as hw
from harness.perf.hardware import TABLE, cpu_estimate, identify, lookup, memory_bandwidth, normalize_dtype, peak_flops

SPR = """processor : 0
vendor_id : GenuineIntel
model name : Intel(R) Xeon(R) Platinum 8480+ @ 2.00GHz
cpu MHz : 1900.000
flags : fpu sse sse2 avx avx2 fma avx512f avx512_bf16 avx512_fp16 amx_bf16 amx_tile
"""
HASWELL = """vendor_id : GenuineIntel
model name : Intel(R) Core(TM) i7-4770 CPU @ 3.40GHz
cpu MHz : 800.000
flags : fpu sse sse2 avx avx2 fma
"""
ZEN4 = """vendor_id : AuthenticAMD
model name : AMD EPYC 9654 96-Core Processor
cpu MHz : 2400.000
flags : fpu sse sse2 avx avx2 fma avx512f avx512_bf16
"""


def env(backend, gpus=None, cpu_model="Intel(R) Xeon(R) Processor", **extra):
    return {"os": {}, "cpu": {"model": cpu_model, "cores": 2}, "python": "3.11", "blas": {"name": "openblas"},
            "mlx": {"version": "0.32.4", "backend": backend, "device": "gpu" if backend != "cpu" else "cpu"},
            "gpu": gpus, **extra}


def test_every_entry_is_sourced_and_sane():
    names = set()
    for h in TABLE:
        assert h.name not in names
        names.add(h.name)
        assert h.flops_source.strip() and h.bandwidth_source.strip(), h.name
        assert h.patterns, h.name
        assert h.flops["fp32"] > 1e12 and h.bandwidth > 5e10 and h.memory_bytes > 8e9, h.name
        for d, v in h.flops.items():
            assert d in hw.DTYPES.values() and v >= h.flops["fp32"] * 0.99, (h.name, d)  # no dtype slower than fp32
        assert lookup(h.name) is h, h.name  # each entry finds itself by its own name


@pytest.mark.parametrize("name,expect,fp32_tflops,bw_gbs", [
    ("M1 Max", "Apple M1 Max", 10.4, 400),
    ("Apple M1 Ultra", "Apple M1 Ultra", 21.0, 800),
    ("apple m1", "Apple M1", 2.6, 68.25),
    ("Apple M2 Ultra (76-core GPU)", "Apple M2 Ultra", 27.2, 800),
    ("NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM", 67, 3350),
    ("NVIDIA H100 PCIe", "NVIDIA H100 PCIe", 51, 2000),
    ("NVIDIA H200", "NVIDIA H200 SXM", 67, 4800),
    ("NVIDIA A100-SXM4-40GB", "NVIDIA A100 SXM4 40GB", 19.5, 1555),
    ("NVIDIA A100 80GB PCIe", "NVIDIA A100 PCIe 80GB", 19.5, 1935),
    ("NVIDIA L4", "NVIDIA L4", 30.3, 300),
    ("NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 4090", 82.6, 1008),
])
def test_lookup_by_name(name, expect, fp32_tflops, bw_gbs):
    h = lookup(name)
    assert h is not None and h.name == expect
    assert h.flops["fp32"] == pytest.approx(fp32_tflops * 1e12, rel=0.01)
    assert h.bandwidth == pytest.approx(bw_gbs * 1e9, rel=0.01)


def test_lookup_unknown_and_no_false_prefix_matches():
    assert lookup("Radeon RX 7900") is None
    assert lookup("NVIDIA L40S").name == "NVIDIA L40S"  # not L4
    assert lookup("NVIDIA A100-SXM4-80GB").name == "NVIDIA A100 SXM4 80GB"  # not A10


def test_h100_dense_figures_are_half_the_sparse_datasheet():
    h = lookup("H100 SXM")
    assert h.flops["bf16"] == pytest.approx(1979e12 / 2, rel=1e-3)
    assert h.flops["fp8"] == pytest.approx(3958e12 / 2, rel=1e-3)


def test_dtype_names():
    assert normalize_dtype("float32") == normalize_dtype("fp32") == "fp32"
    assert normalize_dtype("bfloat16") == "bf16" and normalize_dtype("mx.float16") == "fp16"
    assert normalize_dtype("int4") is None


def test_cuda_environment_uses_tf32_for_float32_under_mlx(monkeypatch):
    monkeypatch.delenv("MLX_ENABLE_TF32", raising=False)
    e = env("cuda", [{"name": "NVIDIA H100 80GB HBM3", "memory_bytes": 85e9, "driver": "x"}])
    v, src = peak_flops(e, "float32")
    assert v == pytest.approx(494.5e12) and "TF32" in src and "datasheet" in src
    assert peak_flops(e, "bfloat16")[0] == pytest.approx(989.5e12)
    monkeypatch.setenv("MLX_ENABLE_TF32", "0")
    assert peak_flops(e, "float32")[0] == pytest.approx(67e12)
    bw, src = memory_bandwidth(e)
    assert bw == pytest.approx(3.35e12) and "datasheet" in src


def test_metal_environment_by_chip_name():
    e = env("metal", cpu_model="Apple M1 Max")
    assert identify(e).name == "Apple M1 Max"
    assert peak_flops(e, "float32")[0] == pytest.approx(10.4e12)
    assert memory_bandwidth(env("metal", cpu_model="arm", chip="Apple M2 Pro"))[0] == pytest.approx(200e9)
    assert identify(env("metal", cpu_model="arm")) is None  # macOS without a chip name: unknown, not a guess


def test_unknown_gpu_gives_none():
    e = env("cuda", [{"name": "Some Future GPU", "memory_bytes": 1, "driver": "x"}])
    assert peak_flops(e, "float32") is None and memory_bandwidth(e) is None


@pytest.mark.parametrize("text,cores,fp32,bf16", [
    (SPR, 56, 56 * 2 * 16 * 2 * 2.0e9, 56 * 1024 * 2.0e9),   # @ 2.00GHz from the model name; AMX for bf16
    (HASWELL, 4, 4 * 2 * 8 * 2 * 3.4e9, None),
    (ZEN4, 96, 96 * 1 * 16 * 2 * 2.4e9, 2 * 96 * 32 * 2.4e9),
])
def test_cpu_estimate_from_flags(text, cores, fp32, bf16):
    h = cpu_estimate(text, cores)
    assert h.flops["fp32"] == pytest.approx(fp32)
    assert h.flops.get("bf16") == (pytest.approx(bf16) if bf16 else None)
    assert "estimate" in h.flops_source and h.bandwidth is None


def test_cpu_environment_with_flags_in_fingerprint():
    e = env("cpu", cpu_model="Some CPU")
    e["cpu"].update(flags=["avx2", "fma"], mhz=3000.0, cores=8)
    v, src = peak_flops(e, "float32")
    assert v == pytest.approx(8 * 2 * 8 * 2 * 3.0e9) and "estimate" in src
    assert memory_bandwidth(e) is None


def test_this_machine():
    from harness.environment import fingerprint

    e = fingerprint()
    got = peak_flops(e, "float32")
    if e["mlx"]["backend"] == "cpu" and hw._local_cpu_model():
        v, src = got
        assert 1e9 < v < 1e14 and "estimate" in src
    else:
        assert got is None or got[0] > 0
