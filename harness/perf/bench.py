"""Speed and memory of one configuration: training tokens/s, step time, peak memory and MFU of the
reference trainer's compiled step, generation tokens/s and time to first token — and the same for the
PyTorch twin from the same weights, side by side in the same process and run.

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


GEN_NOTES = {
    "mlx": "reference.generate: compiled static-cache decoding, {tpc} tokens per call, next call queued ahead; "
           "n > 1 rows share the prompt's keys/values (SharedPrefixCache; attention form {attn})",
    "mlx-lm": "mlx-lm BatchGenerator on the same weights written in its {layout} layout (harness.models.export), "
              "n copies of the prompt inserted at once, prefilled together",
    "torch": "PyTorch twin, eager, static cache, one token queued ahead",
    "torch-compile": "PyTorch twin, torch.compile(mode='reduce-overhead'): CUDA graphs, static cache",
}


def mlxlm_model(cfg, weights: dict, layout: str = "gpt2"):
    """mlx-lm's own model class for `cfg` holding `weights` (reference names), written in mlx-lm's `layout`
    (harness.models.export's tensors and config) to a temporary folder and loaded by mlx_lm.utils.load_model."""
    import json
    import tempfile
    from pathlib import Path

    from mlx_lm.utils import load_model
    from safetensors.numpy import save_file

    from ..models.export import _config, _tensors

    with tempfile.TemporaryDirectory() as d:
        save_file(_tensors(weights, cfg.n_layers, layout, cfg.tie_embeddings), str(Path(d) / "model.safetensors"),
                  metadata={"format": "pt"})
        (Path(d) / "config.json").write_text(json.dumps(_config(cfg, layout, 0, None)))
        model, _ = load_model(Path(d))
    return model


def mlxlm_generate(model, prompt: list[int], n: int, new_tokens: int, ctx: int):
    """Greedy decoding of n copies of `prompt` with mlx-lm's BatchGenerator (all rows inserted together,
    prefilled in one batch), timed as reference.generate.timed_result times ours."""
    import time

    from mlx_lm.generate import BatchGenerator

    from reference.generate import timed_result

    gen = BatchGenerator(model, max_tokens=new_tokens, completion_batch_size=n, prefill_batch_size=n)
    t0 = time.perf_counter()
    uids = gen.insert([list(prompt) for _ in range(n)], [new_tokens] * n)
    row = {u: i for i, u in enumerate(uids)}
    out = [[] for _ in range(n)]
    t_first = None
    while responses := gen.next_generated():
        if t_first is None:
            t_first = time.perf_counter()
        for r in responses:
            if r.finish_reason != "stop":
                out[row[r.uid]].append(int(r.token))
    gen.close()
    return timed_result(out, len(prompt), 0, ctx, t0, t_first)


def bench_generate(bc: BenchConfig, weights=None, prompt_len: int = 64, new_tokens: int = 64,
                   env: dict | None = None, timer=None, n: int = 1, mlxlm_layout: str = "gpt2") -> tuple[list[dict], dict]:
    """Greedy decoding of n rows of one prompt with the KV cache (n = 1: batch-1 decoding; n > 1: the
    pass@k case): time to first token (prefill + one step) and decode tokens/s summed over the rows,
    `repeats` times after `warmup` runs. Frameworks: mlx (reference.generate), mlx-lm (its
    BatchGenerator), torch (the twin, eager) and torch-compile (the twin with CUDA graphs)."""
    import numpy as np

    cfg = model_config(bc)
    prompt_len = min(prompt_len, cfg.max_seq_len // 2)
    new_tokens = min(new_tokens, cfg.max_seq_len - prompt_len)
    prompt = np.random.default_rng(1).integers(0, cfg.vocab_size, size=prompt_len).tolist()
    if bc.framework in ("mlx", "mlx-lm"):
        import mlx.core as mx

        from reference.model import build_model

        if bc.framework == "mlx":
            from reference.generate import generate_tokens

            model = build_model(cfg, seed=0)
            if weights is not None:
                model.load_weights([(k, mx.array(v)) for k, v in weights.items()])
            if bc.dtype == "bfloat16":  # weights and cache in the benchmark's dtype, as the twin's are
                model.set_dtype(mx.bfloat16)
            model.eval()
            run = lambda: generate_tokens(model, prompt, n=n, max_tokens=new_tokens, temperature=0.0)  # noqa: E731
        else:
            if weights is None:
                from mlx.utils import tree_flatten

                weights = {k: np.array(v) for k, v in tree_flatten(build_model(cfg, seed=0).parameters())}
            model = mlxlm_model(cfg, weights, mlxlm_layout)
            if bc.dtype == "bfloat16":
                model.set_dtype(mx.bfloat16)
            mx.eval(model.parameters())
            run = lambda: mlxlm_generate(model, prompt, n, new_tokens, cfg.max_seq_len)  # noqa: E731
    else:
        import torch

        from reference.torch_twin import TorchGPT, load_mlx_weights, torch_generate

        dev = "cuda" if torch.cuda.is_available() else "cpu"
        model = load_mlx_weights(TorchGPT(cfg), weights).to(dev).eval()
        if bc.dtype == "bfloat16":
            model = model.to(torch.bfloat16)
        mode = "reduce-overhead" if bc.framework == "torch-compile" else None  # CUDA graphs
        run = lambda: torch_generate(model, prompt, new_tokens, n=n, compile_mode=mode)  # noqa: E731
    results = []
    if timer is not None:  # the caller times each generation (pytest-benchmark: one round per generation)
        results = timer(run, warmup=bc.warmup, repeats=bc.repeats)
    for i in range(0 if timer is not None else bc.warmup + bc.repeats):
        r = run()
        if i >= bc.warmup:
            results.append(r)
    labels = {**bc.labels(), "batch": n, "n": n, "seq": prompt_len, "new_tokens": new_tokens}
    labels.pop("grad_checkpoint")
    if bc.framework == "mlx-lm":
        labels["layout"] = mlxlm_layout
    from reference.generate import TOKENS_PER_CALL

    from reference.model import BATCH_ATTENTION

    note = GEN_NOTES[bc.framework].format(tpc=TOKENS_PER_CALL, layout=mlxlm_layout, attn=BATCH_ATTENTION)
    tps = [r.decode_tokens_per_s for r in results]
    bound = _bandwidth_bound(cfg, bc.dtype, env, prompt_len + new_tokens / 2, n)
    extra = []
    if bound is not None:
        extra.append(metric("gen.bandwidth_fraction", None, "ratio", True, samples=[x / bound[0] for x in tps],
                            labels=labels, note=bound[1]))
    return extra + [metric("gen.tokens_per_s", None, "tokens/s", True, samples=tps, labels=labels, note=note),
            metric("gen.first_token_s", None, "s", False, samples=[r.first_token_s for r in results], labels=labels)], \
        {"n": n, "framework": bc.framework, "tokens": results[-1].tokens[0][:16],
         "rows_equal_row0": sum(t == results[-1].tokens[0] for t in results[-1].tokens)}


def _bandwidth_bound(cfg, dtype: str, env: dict | None, context: float, n: int = 1) -> tuple[float, str] | None:
    """(tokens/s if each decode step only read what it must, once, at the device's peak bandwidth, how): the
    weights it multiplies by once and each of the n rows' KV cache at the mean context
    (harness.perf.feasibility.decode_bytes_per_token). Rows that share their prompt's keys/values need read them
    only once, so a decoder that shares them can pass this bound."""
    from .feasibility import decode_bytes_per_token
    from .hardware import memory_bandwidth

    bw = memory_bandwidth(env) if env else None
    if bw is None:
        return None
    elem = 2 if dtype == "bfloat16" else 4
    one = decode_bytes_per_token(cfg, int(round(context)), elem)
    kv = decode_bytes_per_token(cfg, int(round(context)), elem) - decode_bytes_per_token(cfg, 0, elem)
    nbytes = one + (n - 1) * kv  # per step of n tokens
    rate = n * bw[0] / nbytes
    return rate, (f"median tokens/s over {rate:,.0f} tokens/s = {n} x {bw[1]} / {nbytes / 1e9:.3f} GB read per "
                  f"step of {n} rows (weights multiplied by + {n} x the KV cache at the mean context of {context:.0f})")


def _cuda_graphs_available() -> bool:
    """torch.compile(mode="reduce-overhead") generation is measured only where it means CUDA graphs."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


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
    if generate and (bc.framework in ("mlx", "mlx-lm", "torch") or _cuda_graphs_available()):
        details["generate"] = []
        for n in gen_n:
            m, d = bench_generate(bc, weights, gen_prompt, gen_tokens, env, n=n)
            ms += m
            details["generate"].append(d)
            _release(bc.framework)
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

