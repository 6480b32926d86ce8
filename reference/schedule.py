"""Learning rate: linear warm-up then cosine decay to a floor (nanoGPT's get_lr; Loshchilov & Hutter 2017).

    step < warmup:           lr * (step + 1) / warmup
    warmup <= step <= decay: min_lr + 0.5 (1 + cos(pi * (step - warmup) / (decay - warmup))) (lr - min_lr)
    step > decay:            min_lr

`step` counts optimizer updates from 0 (the first update uses step 0). Two versions of one formula:
`lr_at` in plain Python (logging, the PyTorch twin) and `mlx_schedule` for the compiled MLX step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import mlx.core as mx


@dataclass(frozen=True)
class Schedule:
    lr: float
    min_lr: float
    warmup: int
    decay_steps: int  # the step at which the cosine reaches min_lr (usually the run's total steps)


def lr_at(s: Schedule, step: int) -> float:
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    if step > s.decay_steps or s.decay_steps <= s.warmup:
        return s.min_lr
    frac = (step - s.warmup) / (s.decay_steps - s.warmup)
    return s.min_lr + 0.5 * (1.0 + math.cos(math.pi * frac)) * (s.lr - s.min_lr)


def mlx_schedule(s: Schedule):
    """step (mx.array, uint64) -> lr (float32 mx.array), the same values as `lr_at`."""
    def f(step: mx.array) -> mx.array:
        t = step.astype(mx.float32)
        warm = s.lr * (t + 1) / max(s.warmup, 1)
        span = max(s.decay_steps - s.warmup, 1)
        frac = mx.clip((t - s.warmup) / span, 0.0, 1.0)
        cos = s.min_lr + 0.5 * (1.0 + mx.cos(math.pi * frac)) * (s.lr - s.min_lr)
        if s.decay_steps <= s.warmup:
            cos = mx.array(s.min_lr, mx.float32)
        return mx.where(t < s.warmup, warm, cos).astype(mx.float32)
    return f
