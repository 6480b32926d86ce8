"""Forward-pass and greedy-decode throughput per preset, MLX beside the PyTorch twin (same weights, fp32).

Each timed call evaluates its result inside the timed region (mx.eval for MLX; PyTorch is eager), after a
warm-up round. tokens/s = batch * seq / median seconds per forward, recorded in benchmark.extra_info (and so
in --benchmark-json). Options (conftest.py): --preset (default small, plus tiny without --quick), --framework
(mlx, torch), --batch, --seq, --quick. A preset runs only when its weights and activations fit in memory;
on CPU the default sequence is short (tiny: 128; --quick halves it) so the suite stays within CI's budget."""
from __future__ import annotations

import statistics
from functools import lru_cache

import mlx.core as mx
import numpy as np
import pytest

from reference.config import PRESETS, ModelConfig, param_count
from reference.model import build_model
from reference.runtime import blas_info

# (batch, seq) on CPU: enough tokens per call that dispatch overhead does not dominate, short enough for CI.
CPU_SHAPES = {"small": (8, 256), "tiny": (1, 128)}
QUICK_CPU_SHAPES = {"small": (4, 128), "tiny": (1, 64)}
GPU_SHAPES = {"small": (16, 256), "tiny": (8, 1024), "medium": (4, 2048), "large": (2, 2048), "xlarge": (1, 2048)}


def _opt(config, name: str, default: list, cast=str) -> list:
    raw = config.getoption(name, default=None)
    if not raw:
        return list(default)
    return [cast(x.strip()) for item in raw for x in str(item).split(",") if x.strip()]


def _on_gpu() -> bool:
    return mx.default_device().type == mx.gpu


def pytest_generate_tests(metafunc):
    if "preset" not in metafunc.fixturenames:
        return
    cfg = metafunc.config
    metafunc.parametrize("preset", list(PRESETS))
    metafunc.parametrize("framework", _opt(cfg, "--framework", ["mlx", "torch"]))
    if "shape" in metafunc.fixturenames:
        batches = _opt(cfg, "--batch", [None], int)
        seqs = _opt(cfg, "--seq", [None], int)
        metafunc.parametrize("shape", [(b, s) for b in batches for s in seqs],
                             ids=lambda bs: f"b{bs[0] or 'default'}-s{bs[1] or 'default'}")


def _available_bytes() -> int | None:
    info = mx.device_info() if hasattr(mx, "device_info") else {}
    if _on_gpu() and info.get("memory_size"):
        return int(info["memory_size"])
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _forward_bytes(cfg: ModelConfig, batch: int, seq: int, copies: int) -> int:
    """fp32 weights (one copy per framework) + the largest transient activations of an inference forward:
    a few (B, T, d)/(B, T, f) tensors, the (B, nh, T, T) attention scores and the (B, T, V) logits."""
    act = batch * seq * (16 * cfg.d_model + 2 * cfg.d_ff + cfg.vocab_size) + batch * cfg.n_heads * seq * seq
    return 4 * (copies * param_count(cfg) + act)


def _select(request, preset: str, framework: str, batch: int | None, seq: int | None):
    """(cfg, batch, seq) or a skip that says why."""
    quick = request.config.getoption("--quick", default=False)
    chosen = _opt(request.config, "--preset", ["small"] if quick else ["small", "tiny"])
    if preset not in chosen:
        pytest.skip(f"preset {preset} not selected (pass --preset {preset}; default: {', '.join(chosen)})")
    shapes = GPU_SHAPES if _on_gpu() else QUICK_CPU_SHAPES if quick else CPU_SHAPES
    if preset not in shapes and (batch is None or seq is None):
        pytest.skip(f"{preset} has no default shape on {'GPU' if _on_gpu() else 'CPU'}; pass --batch and --seq")
    b0, s0 = shapes.get(preset, (1, 128))
    cfg = PRESETS[preset].config
    batch, seq = batch or b0, min(seq or s0, cfg.max_seq_len)
    if framework == "torch":
        pytest.importorskip("torch")
    need, have = _forward_bytes(cfg, batch, seq, 2 if framework == "torch" else 1), _available_bytes()
    if have is not None and need > 0.7 * have:
        pytest.skip(f"{preset} at batch {batch} x seq {seq} needs ~{need / 2**30:.1f} GiB; "
                    f"{have / 2**30:.1f} GiB available")
    return cfg, batch, seq


@lru_cache(maxsize=2)
def _mlx_model(preset: str):
    return build_model(PRESETS[preset].config, seed=0).eval()


@lru_cache(maxsize=1)
def _torch_model(preset: str):
    from reference.torch_twin import from_mlx

    return from_mlx(_mlx_model(preset))


def _median_s(benchmark) -> float | None:
    st = getattr(benchmark, "stats", None)
    return getattr(getattr(st, "stats", None), "median", None)


def _info(framework: str) -> dict:
    out = {"device": str(mx.default_device()), "blas": blas_info()["name"]}
    if framework == "torch":
        import torch

        out.update(torch_threads=torch.get_num_threads(), torch_version=torch.__version__)
    return out


def test_forward_throughput(benchmark, request, preset, framework, shape):
    cfg, batch, seq = _select(request, preset, framework, *shape)
    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, (batch, seq))
    if framework == "mlx":
        m, x = _mlx_model(preset), mx.array(ids.astype(np.int32))

        def fn():
            mx.eval(m(x))
    else:
        import torch

        m, x = _torch_model(preset), torch.tensor(ids, dtype=torch.long)

        def fn():
            with torch.inference_mode():
                m(x)
    rounds = 3 if request.config.getoption("--quick", default=False) else 5
    benchmark.pedantic(fn, rounds=rounds, warmup_rounds=1, iterations=1)
    med = _median_s(benchmark)
    benchmark.extra_info.update(preset=preset, framework=framework, batch=batch, seq=seq, params=param_count(cfg),
                                tokens_per_call=batch * seq, dtype="float32", **_info(framework),
                                tokens_per_s=batch * seq / med if med else None)


def test_greedy_decode_throughput(benchmark, request, preset, framework):
    """Greedy decoding with a KV cache, one sequence: decode tokens/s and time to first token."""
    cfg, _, _ = _select(request, preset, framework, 1, 64)
    prompt = [int(t) for t in np.random.default_rng(1).integers(0, cfg.vocab_size, 32)]
    new = 32 if request.config.getoption("--quick", default=False) else 64
    results = []
    if framework == "mlx":
        from reference.generate import generate_tokens

        m = _mlx_model(preset)

        def fn():
            results.append(generate_tokens(m, prompt, max_tokens=new))
    else:
        from reference.torch_twin import torch_generate

        m = _torch_model(preset)

        def fn():
            results.append(torch_generate(m, prompt, new))
    benchmark.pedantic(fn, rounds=3, warmup_rounds=1, iterations=1)
    timed = results[1:]  # results[0] is the warm-up
    assert all(len(r.tokens[0]) == new for r in timed)
    benchmark.extra_info.update(
        preset=preset, framework=framework, prompt_tokens=len(prompt), new_tokens=new, **_info(framework),
        tokens_per_s=statistics.median(r.decode_tokens_per_s for r in timed),
        first_token_s=statistics.median(r.first_token_s for r in timed),
        tokens_per_s_samples=[r.decode_tokens_per_s for r in timed])
