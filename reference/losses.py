"""The language-model loss: token-level cross-entropy of the output head, in fp32.

`lm_loss` is what training differentiates. For training it goes through `linear_cross_entropy`, which
never holds the whole (tokens x vocabulary) logits matrix: rows are taken `chunk` tokens at a time, and
each chunk's logits give its share of the loss *and* of the gradients with respect to the hidden states
and the output matrix at once (the loss is the end of the graph, so its gradient is known in the forward
pass; the backward pass only scales them by the incoming cotangent). The same arithmetic as autodiff of
`cross_entropy(h @ W.T, y)`: fp32 log-softmax of logits from the compute-dtype matmul, gradient
(softmax - onehot) / N cast back to the compute dtype for the two matmuls. Peak memory falls by several
logits-sized buffers (fp32 logits, their softmax, the bf16 gradient); the FLOPs are the same.
"""
from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

DEFAULT_CHUNK = 4096  # rows per chunk: 4096 x 32000 fp32 logits = 0.5 GB


def cross_entropy(logits: mx.array, targets: mx.array) -> mx.array:
    """Mean token-level cross-entropy in fp32. logits (..., V), targets (...)."""
    return nn.losses.cross_entropy(logits.astype(mx.float32), targets, reduction="mean")


def _chunks(n: int, chunk: int):
    return [(s, min(s + chunk, n)) for s in range(0, n, chunk)]


def _forward_and_grads(h: mx.array, w: mx.array, y: mx.array, chunk: int):
    """(mean loss, dloss/dh, dloss/dw in fp32) for h (N, d), w (V, d), y (N,)."""
    n, V = h.shape[0], w.shape[0]
    total = mx.array(0.0, mx.float32)
    dh, dw = [], None
    vocab = mx.arange(V, dtype=y.dtype)
    for s, e in _chunks(n, chunk):
        hs, ys = h[s:e], y[s:e]
        if dh:
            # one chunk at a time: MLX's scheduler would otherwise run up to 20 independent chunks side
            # by side (breadth-first), each with its logits alive
            hs = mx.depends(hs, [dh[-1], dw, total])
        logits = (hs @ w.T).astype(mx.float32)
        lse = mx.logsumexp(logits, axis=-1)
        target = mx.take_along_axis(logits, ys[:, None], axis=-1)[:, 0]
        total = total + mx.sum(lse - target)
        g = ((mx.exp(logits - lse[:, None]) - (vocab[None, :] == ys[:, None])) / n).astype(h.dtype)
        dh.append(g @ w)
        part = (g.T @ hs).astype(mx.float32)
        dw = part if dw is None else dw + part
    return total / n, mx.concatenate(dh, axis=0) if len(dh) > 1 else dh[0], dw


def linear_cross_entropy(h: mx.array, w: mx.array, y: mx.array, chunk: int = DEFAULT_CHUNK) -> mx.array:
    """Mean cross-entropy of logits h @ w.T against y, differentiable in h and w, chunked (see above).
    h (..., d) in the compute dtype, w (V, d), y (...) integer."""
    d = h.shape[-1]
    h2, y2 = h.reshape(-1, d), y.reshape(-1)

    @mx.custom_function
    def f(h_, w_, y_):
        return _forward_and_grads(h_, w_, y_, chunk)

    @f.vjp
    def f_vjp(primals, cotangents, outputs):
        h_, w_, y_ = primals
        c = cotangents[0].astype(mx.float32)
        return ((outputs[1] * c.astype(outputs[1].dtype)).astype(h_.dtype), (outputs[2] * c).astype(w_.dtype),
                mx.zeros_like(y_))

    return f(h2, w, y2)[0]


def lm_loss(model, x: mx.array, y: mx.array, chunk: int | None = DEFAULT_CHUNK) -> mx.array:
    """Training loss of `model` (reference.model.GPT) on inputs x and targets y, both (B, T). With
    chunk=None the plain path: full logits, then cross_entropy (what evaluation uses)."""
    if chunk is None:
        return cross_entropy(model(x), y)
    return linear_cross_entropy(model.features(x), model.head_weight(), y, chunk)
