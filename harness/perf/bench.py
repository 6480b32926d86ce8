"""Speed and memory of one configuration: training tokens/s, step time, peak memory and MFU of the
reference trainer's compiled step, generation tokens/s and time to first token (harness/perf/genbench.py) —
and the same for the PyTorch twin from the same weights, side by side in the same run (its training in this
process, its generation in a process of its own).

Used by `harness bench` and by the pytest-benchmark suites in suites/benchmarks (one code path)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..report import metric
from .timing import timeit_pipelined

GiB = 2**30
# A constant learning rate on both sides, so that the first steps' losses of MLX and the twin can be
# compared as a sanity check (they match to ~1e-5 with dropout 0; see details.train.losses).
BENCH_LR = 1e-3


@dataclass(frozen=True)
class BenchConfig:
    preset: str = "small"
    batch: int = 4
    seq: int = 128
    dtype: str = "float32"
    grad_checkpoint: bool = False
    framework: str = "mlx"  # mlx | torch | torch-compile | mlx-lm (generation only)
    warmup: int = 2
    repeats: int = 5
    vocab_size: int | None = None  # None: the preset's
    dropout: float | None = None  # None: the preset's
    train_options: tuple = ()  # (name, value) overrides of reference.train.TrainConfig for the MLX step

    def labels(self) -> dict:
        out = {"preset": self.preset, "batch": self.batch, "seq": self.seq, "dtype": self.dtype,
               "grad_checkpoint": "on" if self.grad_checkpoint else "off", "framework": self.framework}
        if self.dropout is not None:
            out["dropout"] = self.dropout
        for k, v in self.train_options:
            out[k] = v
        return out


def model_config(bc: BenchConfig):
    from reference.config import get_config

    cfg = get_config(bc.preset)
    if bc.vocab_size:
        cfg = cfg.with_(vocab_size=bc.vocab_size)
    if bc.dropout is not None:
        cfg = cfg.with_(dropout=bc.dropout)
    if bc.seq > cfg.max_seq_len:
        raise ValueError(f"seq {bc.seq} exceeds preset {bc.preset}'s max_seq_len {cfg.max_seq_len}")
    return cfg


def available_memory(env: dict) -> tuple[float, str]:
    """Bytes a run may use: the GPU's memory on a GPU backend, else 80% of RAM."""
    gpu = env.get("gpu") or []
    if (env.get("mlx") or {}).get("backend") == "cuda" and gpu:
        return float(gpu[0]["memory_bytes"]), f"GPU memory of {gpu[0]['name']}"
    return 0.8 * float(env.get("ram_bytes") or 0), "80% of RAM"


def fits(bc: BenchConfig, env: dict) -> tuple[bool, str]:
    """Whether training this configuration plausibly fits, by harness.perf.feasibility's memory model."""
    from .feasibility import memory_checkpointed, memory_plain

    cfg = model_config(bc)
    # MLX has a fused attention kernel only on a GPU and only in half precision (cuDNN's SDPA takes fp16/bf16):
    # fp32 attention, and attention on the CPU, materialises the (B, heads, T, T) scores of every layer.
    # Measured: tiny 16x1024 fp32 on an H100 peaked at 36.9 GiB in MLX vs 14.5 GiB in PyTorch, and medium
    # 8x2048 fp32 ran out of its 80 GB (results/gpu/NOTES.md).
    mlx_env = env.get("mlx") or {}
    gpu = mlx_env.get("backend") in ("cuda", "metal") or "gpu" in str(mlx_env.get("device", ""))
    fused = gpu and bc.dtype != "float32"
    est = (memory_checkpointed(cfg, bc.batch, bc.seq) if bc.grad_checkpoint
           else memory_plain(cfg, bc.batch, bc.seq, fused_attention=fused))
    have, what = available_memory(env)
    if est.total > have:
        return False, (f"needs ~{est.total / GiB:.1f} GiB ({est.label}) but {what} is {have / GiB:.1f} GiB")
    return True, f"~{est.total / GiB:.1f} GiB of {have / GiB:.1f} GiB ({what})"


def _random_batch(cfg, bc, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.integers(0, cfg.vocab_size, size=(bc.batch, bc.seq), dtype=np.int64)
    y = rng.integers(0, cfg.vocab_size, size=(bc.batch, bc.seq), dtype=np.int64)
    return x, y


def _train_metrics(bc, cfg, samples_s, peak_bytes, env, note=None) -> list[dict]:
    from reference.config import train_flops_per_token

    from .hardware import peak_flops

    tokens = bc.batch * bc.seq
    labels = bc.labels()
    tps = [tokens / s for s in samples_s]
    out = [metric("train.tokens_per_s", None, "tokens/s", True, samples=tps, labels=labels),
           metric("train.step_time_s", None, "s", False, samples=samples_s, labels=labels)]
    out.append(metric("train.peak_memory_bytes", peak_bytes, "bytes", False, labels=labels, note=note))
    peak = peak_flops(env, bc.dtype)
    if peak:
        per_token = train_flops_per_token(cfg, bc.seq)
        out.append(metric("train.mfu", None, "ratio", True, samples=[per_token * x / peak[0] for x in tps], labels=labels,
                          note=f"6N+12LdT FLOPs/token x tokens/s over {peak[0] / 1e12:.2f} TFLOP/s ({peak[1]})"))
    else:
        out.append(metric("train.mfu", None, "ratio", True, labels=labels, note="no peak FLOP/s known for this hardware"))
    return out


def bench_train_mlx(bc: BenchConfig, env: dict, weights=None, timer=timeit_pipelined) -> tuple[list[dict], dict]:
    """The reference trainer's own compiled step (reference.train.make_train_step) on random tokens, run
    as reference.trainer runs it: the next step is queued before the current one's loss is read."""
    import os

    import mlx.core as mx

    from reference.model import build_model
    from reference.train import TrainConfig, make_optimizer, make_train_step, memory_limit

    cfg = model_config(bc)
    model = build_model(cfg, seed=0)
    if weights is not None:
        model.load_weights([(k, mx.array(v)) for k, v in weights.items()])
    model.checkpoint_blocks = bc.grad_checkpoint
    model.train()
    tc = TrainConfig(preset=bc.preset, batch_size=bc.batch, seq_len=bc.seq, dtype=bc.dtype,
                     grad_checkpoint=bc.grad_checkpoint, steps=bc.warmup + bc.repeats + 1,
                     lr=BENCH_LR, min_lr=BENCH_LR, warmup=0).with_(**dict(bc.train_options))
    opt = make_optimizer(tc)
    step = make_train_step(model, opt, tc)
    xs, ys = _random_batch(cfg, bc)
    x, y = mx.array(xs), mx.array(ys)
    mx.eval(x, y)
    losses = []

    def dispatch():
        loss, _ = step([(x, y)])
        mx.async_eval(step.state, loss)
        return loss

    mx.reset_peak_memory()
    with memory_limit(tc):
        t = timer(dispatch, lambda loss: losses.append(loss.item()), warmup=bc.warmup,
                             repeats=bc.repeats)
    peak = mx.get_peak_memory()
    note = ("MLX allocator peak (mx.get_peak_memory)" if mx.default_device() == mx.gpu
            else "MLX CPU allocator peak (mx.get_peak_memory): arrays MLX allocated, not process RSS")
    return _train_metrics(bc, cfg, t.samples, peak, env, note), {
        "losses": losses, "loss_chunk": tc.loss_chunk, "compile": tc.compile, "memory_limit_gb": tc.memory_limit_gb,
        "mlx_env": {k: v for k, v in os.environ.items() if k.startswith("MLX_")}}


def bench_train_torch(bc: BenchConfig, env: dict, weights: dict, timer=timeit_pipelined) -> tuple[list[dict], dict]:
    """The PyTorch twin from the same weights: torch.optim.AdamW (same betas, eps, weight decay on >=2-D
    tensors), clip_grad_norm_, autocast to bf16 when asked; `torch-compile` compiles the model. Pipelined
    like the MLX step: on CUDA each step's loss goes to pinned memory behind an event, and step i's loss
    is read after step i+1 is queued."""
    import torch

    from reference.torch_twin import TorchGPT, load_mlx_weights

    cfg = model_config(bc)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_mlx_weights(TorchGPT(cfg), weights).to(dev)
    model.checkpoint_blocks = bc.grad_checkpoint
    model.train()
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=BENCH_LR, betas=(0.9, 0.95), eps=1e-8)
    fwd = torch.compile(model) if bc.framework == "torch-compile" else model
    xs, ys = _random_batch(cfg, bc)
    x, y = torch.from_numpy(xs).to(dev), torch.from_numpy(ys).to(dev)
    amp = torch.autocast(dev, dtype=torch.bfloat16) if bc.dtype == "bfloat16" else torch.autocast(dev, enabled=False)
    losses = []
    n = max(1, bc.warmup) + bc.repeats + 1  # timeit_pipelined dispatches one step more than it times
    host = torch.zeros(n, dtype=torch.float32, pin_memory=dev == "cuda")
    count = [0]

    def dispatch():
        opt.zero_grad(set_to_none=True)
        with amp:
            logits = fwd(x)
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, logits.size(-1)), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        i = count[0]
        count[0] += 1
        if dev != "cuda":
            return i, loss
        host[i].copy_(loss.detach(), non_blocking=True)
        ev = torch.cuda.Event()
        ev.record()
        return i, ev

    def wait(handle):
        i, h = handle
        if dev == "cuda":
            h.synchronize()
            losses.append(float(host[i]))
        else:
            losses.append(h.item())

    if dev == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t = timer(dispatch, wait, warmup=bc.warmup, repeats=bc.repeats)
    if dev == "cuda":
        peak, note = torch.cuda.max_memory_allocated(), "torch.cuda.max_memory_allocated"
    else:
        peak, note = None, "not measured for PyTorch on CPU (no allocator statistics)"
    return _train_metrics(bc, cfg, t.samples, peak, env, note), {"losses": losses, "torch_threads": torch.get_num_threads(),
                                                                 "matmul_precision": torch.get_float32_matmul_precision()}


def initial_weights(bc: BenchConfig) -> dict:
    """The MLX model's initial weights as numpy arrays, shared by both frameworks."""
    import numpy as np
    from mlx.utils import tree_flatten

    from reference.model import build_model

    m = build_model(model_config(bc), seed=0)
    return {k: np.array(v) for k, v in tree_flatten(m.parameters())}


def run_config(bc: BenchConfig, env: dict, *, train: bool = True, generate: bool = True, weights=None,
               gen_prompt: int = 64, gen_tokens: int = 64, gen_n=(1,)):
    """All metrics for one configuration; (metrics, details). Skips what does not fit, saying why."""
    ok, why = fits(bc, env) if train else (True, "generation only")
    details = {"config": asdict(bc), "fit": why}
    if not ok:
        details["skipped"] = why
        return [], details
    if weights is None and bc.framework != "mlx":
        weights = initial_weights(bc)
    ms = []
    if train:
        f = bench_train_mlx if bc.framework == "mlx" else bench_train_torch
        m, d = f(bc, env, weights)
        ms += m
        details["train"] = d
        _release(bc.framework)
    from .genbench import _cuda_graphs_available, bench_generate, twin_generate

    if generate and (bc.framework in ("mlx", "mlx-lm", "torch") or _cuda_graphs_available()):
        details["generate"] = []
        if bc.framework.startswith("torch"):  # every n in one process of its own (genbench's docstring says why)
            per_n = twin_generate(bc, weights, gen_prompt, gen_tokens, env, gen_n)
        else:
            per_n = []
            for n in gen_n:
                per_n.append(bench_generate(bc, weights, gen_prompt, gen_tokens, env, n=n))
                _release(bc.framework)
        for m, d in per_n:
            ms += m
            details["generate"].append(d)
    return ms, details


def _release(framework: str) -> None:
    """Hand the framework's cached device memory back, so the next framework in this process (the twin
    after MLX, or MLX after the twin) finds the GPU empty."""
    import gc

    gc.collect()
    if framework in ("mlx", "mlx-lm"):
        import mlx.core as mx

        mx.clear_cache()
    else:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

