"""The training configuration and the compiled train step (AdamW, clipping, accumulation, bf16, DP).

Precision: with dtype "bfloat16" the fp32 parameters are the master weights; each step casts them to
bf16 for the forward and backward pass, the gradients come back in fp32 through the cast, and the
optimizer (fp32 moments) updates the fp32 masters. The loss is computed from fp32 logits.
Accumulation: k micro-batches are each run through one compiled gradient function and summed; the
compiled update averages them (over micro-batches and then data-parallel ranks), clips and applies AdamW.
With k = 1 the whole step is one compiled function (mlx-lm's `mx.compile(step, inputs=state,
outputs=state)`).
"""
from __future__ import annotations

import json
import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from functools import partial
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_map

from .config import PRESETS, ModelConfig
from .errors import InputError
from .losses import cross_entropy, lm_loss  # noqa: F401 (cross_entropy: imported from here by callers)
from .optim import AdamW, clip_by_global_norm
from .schedule import Schedule, mlx_schedule

STAGES = {"pretrain": "text", "finetune": "bash"}


@dataclass(frozen=True)
class TrainConfig:
    preset: str = "small"
    model: dict = field(default_factory=dict)  # overrides of the preset's shape (d_model, n_layers, ...)
    stage: str = "pretrain"
    corpus: str | None = None  # None: "text" for pretrain, "bash" for finetune
    steps: int = 300
    batch_size: int = 16  # sequences per micro-batch, summed over data-parallel processes
    seq_len: int | None = None  # None: the model's max_seq_len
    accum: int = 1  # micro-batches per optimizer step
    lr: float = 1e-3
    min_lr: float | None = None  # None: lr / 10
    warmup: int = 30
    decay_steps: int | None = None  # None: `steps` of the run that started it (kept on --resume)
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0
    dtype: str = "float32"
    grad_checkpoint: bool = False
    loss_chunk: int = 4096  # tokens per chunk of the fused head + cross-entropy (0: whole logits at once)
    memory_limit_gb: float | None = None  # mx.set_memory_limit: encoding waits while more is allocated
    dropout: float | None = None  # None: the preset's (or the --init checkpoint's)
    seed: int = 0
    eval_every: int = 50
    eval_batches: int = 8
    save_every: int = 100
    keep: int = 3
    compile: bool = True
    log_every: int = 10

    def __post_init__(self):
        if self.stage not in STAGES:
            raise InputError(f"stage {self.stage!r} is not one of {', '.join(STAGES)}")
        if self.dtype not in ("float32", "bfloat16"):
            raise InputError(f"dtype {self.dtype!r} is not supported; use float32 or bfloat16")
        for k in ("steps", "batch_size", "accum", "eval_every", "eval_batches", "save_every", "log_every"):
            if getattr(self, k) < 1:
                raise InputError(f"{k} (--{k.replace('_', '-')}) must be at least 1, got {getattr(self, k)}")
        if self.loss_chunk < 0:
            raise InputError(f"loss_chunk must be >= 0 (0 = unchunked), got {self.loss_chunk}")
        if self.memory_limit_gb is not None and not 0 < self.memory_limit_gb <= 2**20:
            raise InputError(f"memory_limit_gb (--memory-limit-gb) must be a positive number of GiB, e.g. 20; "
                             f"got {self.memory_limit_gb}")
        if self.warmup < 0 or self.lr <= 0 or self.keep < 1:
            raise InputError(f"need warmup >= 0, lr > 0 and keep >= 1 (got {self.warmup}, {self.lr}, {self.keep})")
        if not 0 <= self.seed < 2**32:
            raise InputError(f"seed (--seed) must be from 0 to 2**32 - 1, got {self.seed}; e.g. --seed 0")
        if self.seq_len is not None and self.seq_len < 1:
            raise InputError(f"seq_len (--seq-len) must be at least 1 token, got {self.seq_len}; leave it out to "
                             f"use the model's context")
        for k, low, high, example in (("lr", 0.0, None, "3e-4"), ("min_lr", 0.0, None, "3e-5"),
                                      ("weight_decay", 0.0, None, "0.1"), ("grad_clip", 0.0, None, "1.0"),
                                      ("dropout", 0.0, 1.0, "0.1"), ("beta1", 0.0, 1.0, "0.9"),
                                      ("beta2", 0.0, 1.0, "0.95"), ("eps", 0.0, 1.0, "1e-8")):
            v = getattr(self, k)
            if v is None:
                continue
            flag = "--" + k.replace("_", "-")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < low \
                    or (high is not None and (v >= high if k in ("dropout", "beta1", "beta2") else v > high)):
                bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
                raise InputError(f"{k} ({flag}) must be a finite number {bounds}, got {v}; e.g. {flag} {example}")

    @property
    def corpus_name(self) -> str:
        return self.corpus or STAGES[self.stage]

    def schedule(self) -> Schedule:
        min_lr = self.lr / 10 if self.min_lr is None else self.min_lr
        return Schedule(self.lr, min_lr, self.warmup, self.decay_steps or self.steps)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, where: str = "config") -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"{where} has unknown training settings {unknown}; known: {sorted(known)}")
        try:
            return cls(**d)
        except TypeError as e:
            raise InputError(f"{where} is not a valid training config ({e})") from None

    def with_(self, **kw) -> "TrainConfig":
        return replace(self, **kw)

    def model_config(self, vocab_size: int) -> ModelConfig:
        """The preset's shape with the data's vocabulary and this config's overrides."""
        if self.preset not in PRESETS:
            raise InputError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        kw = dict(self.model)
        kw["vocab_size"] = vocab_size
        if self.dropout is not None:
            kw["dropout"] = self.dropout
        try:
            return PRESETS[self.preset].config.with_(**kw)
        except (TypeError, ValueError) as e:
            raise InputError(f"model overrides {self.model} do not give a valid model ({e})") from None


def load_config_file(path: str | Path) -> dict:
    p = Path(path)
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"training config {p} cannot be read ({e}); pass a preset name or a JSON file") from None
    if not isinstance(d, dict):
        raise InputError(f"training config {p} must hold a JSON object")
    d.pop("description", None)
    return d


def cast_floating(params, dtype):
    """`params` with every floating-point array cast to `dtype` (the compute copy of the fp32 masters)."""
    return tree_map(lambda p: p.astype(dtype) if mx.issubdtype(p.dtype, mx.floating) else p, params)


@contextmanager
def memory_limit(cfg: TrainConfig):
    """MLX's memory limit set from cfg.memory_limit_gb inside the block and put back after it (nothing
    happens when it is None).

    Why it matters on a GPU: MLX's CUDA backend keeps every input of an operation alive until the command
    buffer that ran it completes, and the host encodes up to 10 command buffers ahead of the GPU. A step's
    temporaries can therefore all be alive at once, and the peak depends on how far the host runs ahead. While
    more than the limit is allocated, MLX's evaluation loop stops encoding and waits for the GPU to finish
    buffers (mlx/transforms.cpp), so a limit bounds the run-ahead and with it the peak, at some cost in speed."""
    if cfg.memory_limit_gb is None:
        yield
        return
    previous = mx.set_memory_limit(int(cfg.memory_limit_gb * 2 ** 30))
    try:
        yield
    finally:
        mx.set_memory_limit(previous)


def make_loss_and_grad(model, dtype: str, loss_chunk: int = 4096):
    """f(x, y) -> (loss, grads w.r.t. the fp32 master parameters). loss_chunk > 0 computes the head and
    the loss in chunks of that many tokens (reference.losses.linear_cross_entropy)."""
    compute = mx.bfloat16 if dtype == "bfloat16" else None

    def loss_of(params, x, y):
        if compute is not None:
            params = cast_floating(params, compute)
        model.update(params)
        return lm_loss(model, x, y, loss_chunk or None)

    vg = mx.value_and_grad(loss_of)

    def f(x, y):
        master = model.trainable_parameters()
        loss, grads = vg(master, x, y)
        model.update(master)  # the forward left the (cast) tracer arrays in the model
        return loss, grads

    return f


def make_optimizer(cfg: TrainConfig) -> AdamW:
    return AdamW(mlx_schedule(cfg.schedule()), betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
                 weight_decay=cfg.weight_decay)


def make_train_step(model, optimizer, cfg: TrainConfig, dist=None):
    """step(batches) -> (loss, grad_norm), lazy mx scalars; `batches` is a list of cfg.accum (x, y)
    micro-batches, each (B_local, T). The loss is the mean over micro-batches and processes of each
    micro-batch's mean token loss, i.e. the loss of the whole global batch (all micro-batches hold the
    same number of tokens). Call mx.eval(step.state, loss) after each step."""
    average = dist.average if dist is not None and dist.size > 1 else (lambda t: t)
    loss_and_grad = make_loss_and_grad(model, cfg.dtype, cfg.loss_chunk)
    state = [model.state, optimizer.state, mx.random.state]
    jit = partial(mx.compile, inputs=state, outputs=state) if cfg.compile else (lambda f: f)
    k = cfg.accum

    def finish(loss, grads):
        grads, loss = average(grads), average(loss)
        grads, norm = clip_by_global_norm(grads, cfg.grad_clip)
        optimizer.update(model, grads)
        return loss, norm

    @jit
    def fused(x, y):
        return finish(*loss_and_grad(x, y))

    @jit
    def micro(x, y, acc):
        loss, grads = loss_and_grad(x, y)
        return loss, tree_map(mx.add, acc, grads)

    @jit
    def update(loss_sum, acc):
        return finish(loss_sum / k, tree_map(lambda g: g / k, acc))

    def step(batches):
        if len(batches) != k:
            raise ValueError(f"expected {k} micro-batches, got {len(batches)}")
        if k == 1:
            return fused(*batches[0])
        acc = tree_map(mx.zeros_like, model.trainable_parameters())
        loss_sum = mx.array(0.0, mx.float32)
        for x, y in batches:
            loss, acc = micro(x, y, acc)
            loss_sum = loss_sum + loss
            mx.async_eval(loss_sum, acc)  # bound memory to one micro-batch's activations
        return update(loss_sum, acc)

    step.state = state
    return step


def make_eval_fn(model, cfg: TrainConfig, dist=None):
    """loss(x, y) in eval mode (no dropout), averaged over processes, in the training compute dtype: with
    bf16 the fp32 masters are cast as in training. (In fp32 on a GPU MLX's attention is not fused, and
    validating the fp32 masters of a bf16 run took 3x the memory of the bf16 training step.)"""
    average = dist.average if dist is not None and dist.size > 1 else (lambda t: t)
    compute = mx.bfloat16 if cfg.dtype == "bfloat16" else None

    def f(x, y):
        if compute is None:
            return average(cross_entropy(model(x), y))
        master = model.parameters()
        model.update(cast_floating(master, compute))
        loss = cross_entropy(model(x), y)
        model.update(master)
        return average(loss)

    return mx.compile(f, inputs=[model.state]) if cfg.compile else f
