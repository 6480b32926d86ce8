"""AdamW with bias correction and a weight-decay mask, and global-norm gradient clipping.

MLX's `optim.AdamW` omits Adam's bias correction by default and decays every parameter; this one follows
PyTorch's `torch.optim.AdamW` (Loshchilov & Hutter 2019, with Kingma & Ba's bias correction):

    m_t = b1 m + (1-b1) g          v_t = b2 v + (1-b2) g^2
    w  <- w (1 - lr wd)            only for tensors with ndim >= 2 (see below)
    w  <- w - lr/(1-b1^t) * m_t / (sqrt(v_t)/sqrt(1-b2^t) + eps)

Decay mask: nanoGPT's rule, every tensor with ndim >= 2 decays. That includes the matmul weights and both
embeddings (wte, shared with the tied output head, and wpe); biases and LayerNorm gains/shifts (1-D) do not.
The mask depends only on shape, so it is decided per parameter inside `apply_single`, which keeps the
update a pure function that `mx.compile` can trace.
"""
from __future__ import annotations

import mlx.core as mx
import mlx.optimizers as optim
from mlx.utils import tree_flatten, tree_map


def decays(param: mx.array) -> bool:
    return param.ndim >= 2


class AdamW(optim.Optimizer):
    def __init__(self, learning_rate, betas=(0.9, 0.95), eps: float = 1e-8, weight_decay: float = 0.1):
        super().__init__()
        self._maybe_schedule("learning_rate", learning_rate)
        self.betas = tuple(betas)
        self.eps = eps
        self.weight_decay = weight_decay

    def init_single(self, parameter: mx.array, state: dict):
        # moments kept in fp32 whatever the parameter dtype (master weights are fp32 in training anyway)
        state["m"] = mx.zeros(parameter.shape, mx.float32)
        state["v"] = mx.zeros(parameter.shape, mx.float32)

    def apply_single(self, gradient: mx.array, parameter: mx.array, state: dict):
        b1, b2 = self.betas
        lr = self.learning_rate.astype(mx.float32)
        g = gradient.astype(mx.float32)
        t = self.step.astype(mx.float32)  # already incremented: 1 on the first update
        m = b1 * state["m"] + (1 - b1) * g
        v = b2 * state["v"] + (1 - b2) * mx.square(g)
        state["m"], state["v"] = m, v
        w = parameter.astype(mx.float32)
        if self.weight_decay and decays(parameter):
            w = w * (1 - lr * self.weight_decay)
        bc1 = 1 - mx.power(mx.array(b1, mx.float32), t)
        bc2 = 1 - mx.power(mx.array(b2, mx.float32), t)
        denom = mx.sqrt(v) / mx.sqrt(bc2) + self.eps
        w = w - (lr / bc1) * (m / denom)
        return w.astype(parameter.dtype)


def global_norm(grads) -> mx.array:
    return mx.sqrt(sum(mx.sum(mx.square(g.astype(mx.float32))) for _, g in tree_flatten(grads)))


def clip_by_global_norm(grads, max_norm: float):
    """(clipped grads, norm before clipping), scaled as torch.nn.utils.clip_grad_norm_ does:
    coef = min(1, max_norm / (norm + 1e-6))."""
    norm = global_norm(grads)
    if not max_norm or max_norm <= 0:
        return grads, norm
    coef = mx.minimum(max_norm / (norm + 1e-6), 1.0)
    return tree_map(lambda g: (g * coef).astype(g.dtype), grads), norm


def state_to_flat(opt: optim.Optimizer) -> dict[str, mx.array]:
    """The optimizer state as flat name -> array (`step`, `learning_rate`, `<param>.m`, `<param>.v`)."""
    return dict(tree_flatten(opt.state))


def state_from_flat(opt: optim.Optimizer, flat: dict[str, mx.array], params) -> None:
    """Restore `state_to_flat`'s output into `opt`, checking it covers exactly `params`' names."""
    from mlx.utils import tree_unflatten

    from .errors import InputError

    names = {k for k, _ in tree_flatten(params)}
    have = {k.rsplit(".", 1)[0] for k in flat if k.endswith((".m", ".v"))}
    if names != have or "step" not in flat:
        raise InputError(f"optimizer state does not match the model (missing {sorted(names - have)[:3]}, "
                         f"unexpected {sorted(have - names)[:3]}); the checkpoint is corrupt or from another model")
    opt.state = tree_unflatten(list(flat.items()))
