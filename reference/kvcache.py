"""Decode-time caches of the reference GPT and the attention over them.

Two caches: `KVCache` grows in chunks (any number of steps, shapes change as it grows) and `StaticKVCache` has a
fixed capacity and takes its position as an array, so a decode step has one shape from the first token to the last
and compiles once (reference.generate's fast path); `SharedPrefixCache`, its batched form, keeps the prompt's
keys/values once for n rows that continue the same prompt (pass@k sampling). Attention over a static cache is
written out (`static_attention`), so that batch-1 decoding on CUDA runs MLX's gemv kernel instead of cuBLAS
(1.6-1.9x faster on an H100: results/gpu/h100/decode-ab.jsonl); over a SharedPrefixCache it is
`shared_prefix_attention`, or on a CUDA GPU the fused kernels of reference.decode_kernels.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

import mlx.core as mx

from . import decode_kernels
from .config import ModelConfig

if TYPE_CHECKING:
    from .model import GPT


class KVCache:
    """Per-layer key/value buffers, preallocated in chunks of `step` positions so that a decode step
    writes in place instead of concatenating (mlx-lm's KVCache does the same)."""

    step = 256

    def __init__(self):
        self.keys = None  # (B, nh, capacity, hs)
        self.values = None
        self.offset = 0

    def update(self, k: mx.array, v: mx.array) -> tuple[mx.array, mx.array]:
        B, H, T, D = k.shape
        prev = self.offset
        if self.keys is None or prev + T > self.keys.shape[2]:
            n = ((prev + T + self.step - 1) // self.step) * self.step
            nk = mx.zeros((B, H, n, D), k.dtype)
            nv = mx.zeros((B, H, n, D), v.dtype)
            if self.keys is not None and prev:
                nk[:, :, :prev, :] = self.keys[:, :, :prev, :]
                nv[:, :, :prev, :] = self.values[:, :, :prev, :]
            self.keys, self.values = nk, nv
        self.keys[:, :, prev:prev + T, :] = k
        self.values[:, :, prev:prev + T, :] = v
        self.offset = prev + T
        return self.keys[:, :, :self.offset, :], self.values[:, :, :self.offset, :]

    @property
    def state(self):
        return self.keys, self.values


class StaticKVCache:
    """Keys of one layer in a fixed (B, nh, capacity, hs) buffer and values in a (B, nh, hs, capacity) one
    (transposed: see `static_attention`). `offset` is an int32 array (the number of positions already
    written), so the same compiled step serves every position; attention runs over the whole buffer with a
    mask that hides the positions not yet written."""

    def __init__(self, keys: mx.array, values: mx.array, offset: mx.array):
        self.keys, self.values, self.offset = keys, values, offset

    @classmethod
    def empty(cls, batch: int, cfg: ModelConfig, capacity: int, dtype) -> "StaticKVCache":
        shape = (batch, cfg.n_heads, capacity, cfg.head_dim)
        shape_t = (batch, cfg.n_heads, cfg.head_dim, capacity)
        return cls(mx.zeros(shape, dtype), mx.zeros(shape_t, dtype), mx.array(0, mx.int32))

    def positions(self, T: int) -> mx.array:
        return self.offset + mx.arange(T, dtype=mx.int32)

    def update(self, k: mx.array, v: mx.array):
        T = k.shape[2]
        start = mx.reshape(self.offset, (1,))
        self.keys = mx.slice_update(self.keys, k.astype(self.keys.dtype), start, axes=(2,))
        self.values = mx.slice_update(self.values, v.swapaxes(2, 3).astype(self.values.dtype), start, axes=(3,))
        # query i (at position offset + i) sees keys 0 .. offset + i
        mask = mx.arange(self.keys.shape[2], dtype=mx.int32)[None, :] <= self.positions(T)[:, None]
        return self.keys, self.values, mask

    def advance(self, T: int) -> None:
        self.offset = self.offset + T


class SharedPrefixCache(StaticKVCache):
    """One layer's cache for n rows that continue one prompt (pass@k sampling): the prompt's keys and values
    once, shared by every row, plus each row's own generated positions in fixed buffers.

    prefix_keys (1, nh, Pc, hs) and prefix_values_t (1, nh, hs, Pc) hold the prefilled prompt (a batch-1
    StaticKVCache's buffers; `prefix_len` of its Pc positions are valid); keys (n, nh, Gc, hs) and values
    (n, nh, hs, Gc, transposed as in StaticKVCache) hold the generated tokens, `offset` of them written.
    Copying the prompt's keys to n rows would make every decode step read them n times; shared, they are
    read once per step and their scores are one matrix product per head (n queries at once)."""

    def __init__(self, keys, values, offset, prefix_keys, prefix_values_t, prefix_len, recent: int = 0):
        super().__init__(keys, values, offset)
        self.prefix_keys, self.prefix_values_t, self.prefix_len = prefix_keys, prefix_values_t, prefix_len
        # With `recent` = R > 0, new positions go to small (B, nh, R, hs) / (B, nh, hs, R) buffers and the
        # large ones stay read-only until `flush` writes the R positions at once. MLX copies the whole array
        # a slice update writes unless it can donate it, and it cannot while a queued kernel still reads it
        # (the previous step's attention): one large write per R steps instead of one per step.
        self.base = offset
        self.recent_keys = self.recent_values = None
        if recent:
            B, H, _, D = keys.shape
            self.recent_keys = mx.zeros((B, H, recent, D), keys.dtype)
            self.recent_values = mx.zeros((B, H, D, recent), values.dtype)

    def positions(self, T: int) -> mx.array:
        return self.prefix_len + self.offset + mx.arange(T, dtype=mx.int32)

    def flush(self) -> None:
        """Write the recent positions into the large buffers (after the R steps of a decode call)."""
        if self.fused():
            self.keys, self.values = decode_kernels.flush(self.keys, self.values, self.recent_keys,
                                                          self.recent_values, self.base)
            return
        start = mx.reshape(self.base, (1,))
        self.keys = mx.slice_update(self.keys, self.recent_keys, start, axes=(2,))
        self.values = mx.slice_update(self.values, self.recent_values, start, axes=(3,))

    def fused(self) -> bool:
        """Whether one new position per row can go through reference.decode_kernels (on a CUDA GPU)."""
        return (self.recent_keys is not None and decode_kernels.enabled()
                and decode_kernels.fits(self.keys.shape, self.prefix_keys.shape[2], self.recent_keys.shape[2]))

    def attend_fused(self, qkv: mx.array) -> mx.array:
        """Write the new position (keys and values in qkv (B, 3 d_model)) into the per-call buffers and attend
        over prompt, generated and per-call positions: two CUDA kernels -> (B, d_model)."""
        at = self.offset - self.base
        self.recent_keys, self.recent_values = decode_kernels.recent_write(self.recent_keys, self.recent_values,
                                                                           qkv, at)
        return decode_kernels.attention(qkv, self.prefix_keys, self.prefix_values_t, self.prefix_len, self.keys,
                                        self.values, self.base, self.recent_keys, self.recent_values, at + 1)

    def update(self, k: mx.array, v: mx.array):
        T = k.shape[2]
        if self.recent_keys is not None:
            at = mx.reshape(self.offset - self.base, (1,))
            self.recent_keys = mx.slice_update(self.recent_keys, k.astype(self.keys.dtype), at, axes=(2,))
            self.recent_values = mx.slice_update(self.recent_values, v.swapaxes(2, 3).astype(self.values.dtype),
                                                 at, axes=(3,))
            R = self.recent_keys.shape[2]
            return (None, None,
                    mx.arange(R, dtype=mx.int32)[None, :] <= (self.offset - self.base + mx.arange(T, dtype=mx.int32))[:, None])
        start = mx.reshape(self.offset, (1,))
        self.keys = mx.slice_update(self.keys, k.astype(self.keys.dtype), start, axes=(2,))
        self.values = mx.slice_update(self.values, v.swapaxes(2, 3).astype(self.values.dtype), start, axes=(3,))
        mask = mx.arange(self.keys.shape[2], dtype=mx.int32)[None, :] <= (self.offset + mx.arange(T, dtype=mx.int32))[:, None]
        return self.keys, self.values, mask


# How shared_prefix_attention forms its products: "mulsum" as broadcast products summed over the last axis
# (elementwise and row-reduction kernels), "matmul" as matrix products (cuBLAS for the prompt part, MLX's batched
# gemv for the rows' own part). HARNESS_BATCH_ATTENTION overrides it (for A/B runs; results/gpu/NOTES.md).
# The decode step's caches keep their new positions in per-call buffers (recent), which always take "matmul".
BATCH_ATTENTION = os.environ.get("HARNESS_BATCH_ATTENTION", "matmul")


def decode_attention_form() -> str:
    """How batched decoding (SharedPrefixCache) forms attention in this process: "matmul" or "mulsum"/"mulsum16"
    (BATCH_ATTENTION), or "cuda-kernels" where the fused CUDA kernels run (reference.decode_kernels)."""
    return "cuda-kernels" if decode_kernels.enabled() else BATCH_ATTENTION


def shared_prefix_attention(q: mx.array, cache: SharedPrefixCache, mask: mx.array, scale: float) -> mx.array:
    if BATCH_ATTENTION in ("mulsum", "mulsum16") and cache.recent_keys is None:
        return _shared_prefix_attention_mulsum(q, cache, mask, scale, BATCH_ATTENTION == "mulsum16")
    return _shared_prefix_attention_matmul(q, cache, mask, scale)


def _shared_prefix_attention_mulsum(q, cache, mask, scale, low: bool = False):
    """shared_prefix_attention from broadcast products and last-axis sums: scores (q * keys).sum(-1) over
    (B, nh, Gc, hs) and (1, nh, Pc, hs); outputs (p * values_t).sum(-1) over the transposed values
    (B, nh, hs, Gc) and (1, nh, hs, Pc). Products in fp32 (`low`: in the cache's dtype, half the bytes of the
    product arrays); softmax in fp32. For one query per row (T = 1)."""
    B, H, T, D = q.shape
    if T != 1:
        return _shared_prefix_attention_matmul(q, cache, mask, scale)
    qs = (q * scale).astype(q.dtype if low else mx.float32)  # (B, nh, 1, hs)
    pk, pv_t = cache.prefix_keys, cache.prefix_values_t  # (1, nh, Pc, hs), (1, nh, hs, Pc)
    P = pk.shape[2]
    sp = (qs * pk).sum(-1)  # (B, nh, Pc)
    sg = (qs * cache.keys).sum(-1)  # (B, nh, Gc)
    neg = mx.array(-float("inf"), mx.float32)
    pmask = mx.arange(P, dtype=mx.int32) < cache.prefix_len
    s = mx.concatenate([mx.where(pmask, sp, neg), mx.where(mask[0], sg, neg)], axis=-1)
    p = mx.softmax(s.astype(mx.float32), axis=-1).astype(qs.dtype)
    pp, pg = p[..., None, :P], p[..., None, P:]  # (B, nh, 1, Pc), (B, nh, 1, Gc)
    out = (pp * pv_t).sum(-1) + (pg * cache.values).sum(-1)  # (B, nh, hs)
    return out[:, :, None, :].astype(q.dtype)


def _shared_prefix_attention_matmul(q: mx.array, cache: SharedPrefixCache, mask: mx.array, scale: float) -> mx.array:
    """Attention of q (B, nh, T, hs) over a SharedPrefixCache: the shared prompt positions (scores for all B*T
    queries of a head in one (B*T, hs) x (hs, Pc) product; the weighted sum likewise) and each row's generated
    positions (as static_attention: products of one query row, MLX's gemv on CUDA), one softmax in fp32 over
    both. `mask` (T, Gc) hides generated positions not yet written; prompt positions past prefix_len are hidden."""
    B, H, T, D = q.shape
    pk, pv_t = cache.prefix_keys.astype(q.dtype), cache.prefix_values_t.astype(q.dtype)
    P = pk.shape[2]
    qs = q * scale
    qh = qs.transpose(1, 0, 2, 3).reshape(H, B * T, D)  # (nh, B*T, hs)
    sp = (qh @ pk[0].swapaxes(-1, -2)).reshape(H, B, T, P).transpose(1, 0, 2, 3)  # (B, nh, T, Pc)
    sg = qs @ cache.keys.astype(q.dtype).swapaxes(-1, -2)  # (B, nh, T, Gc)
    neg = mx.array(-float("inf"), sp.dtype)
    pmask = mx.arange(P, dtype=mx.int32) < cache.prefix_len
    recent = cache.recent_keys is not None
    if recent:  # `mask` is the recent buffer's; the large buffer holds the positions before this call
        G = cache.keys.shape[2]
        parts = [mx.where(pmask, sp, neg), mx.where(mx.arange(G, dtype=mx.int32) < cache.base, sg, neg),
                 mx.where(mask, qs @ cache.recent_keys.astype(q.dtype).swapaxes(-1, -2), neg)]
    else:
        parts = [mx.where(pmask, sp, neg), mx.where(mask, sg, neg)]
    p = mx.softmax(mx.concatenate(parts, axis=-1), axis=-1, precise=True).astype(q.dtype)
    G = sg.shape[-1]
    pp, pg = p[..., :P], p[..., P:P + G]
    op = (pp.transpose(1, 0, 2, 3).reshape(H, B * T, P) @ pv_t[0].swapaxes(-1, -2))  # (nh, B*T, hs)
    op = op.reshape(H, B, T, D).transpose(1, 0, 2, 3)
    og = (cache.values.astype(q.dtype) @ pg.swapaxes(-1, -2)).swapaxes(-1, -2)  # (B, nh, T, hs)
    if recent:
        pr = p[..., P + G:]
        og = og + (cache.recent_values.astype(q.dtype) @ pr.swapaxes(-1, -2)).swapaxes(-1, -2)
    return op + og


def static_attention(q: mx.array, keys: mx.array, values_t: mx.array, mask: mx.array, scale: float) -> mx.array:
    """Attention of q (B, nh, T, hs) over a StaticKVCache's whole buffer: keys (B, nh, cap, hs), values
    transposed (B, nh, hs, cap), boolean mask (T, cap) -> (B, nh, T, hs).

    Written out rather than through mx.fast.scaled_dot_product_attention, which on CUDA has no fused kernel
    for an array mask and falls back to matmul, softmax, matmul, the second matmul one cuBLAS call per layer
    and token. Here, for one query (batch-1 decoding), both products have the shape MLX's CUDA gemv kernel
    takes (one row times a transposed matrix; a row-major matrix times one column, hence the transposed
    values), so a decode step makes no cuBLAS call for attention. The arithmetic is the fallback's: scaled
    scores, masked to -inf, softmax in fp32."""
    scores = (q * scale) @ keys.swapaxes(-1, -2)  # (B, nh, T, cap)
    scores = mx.where(mask, scores, mx.array(-float("inf"), scores.dtype))
    p = mx.softmax(scores, axis=-1, precise=True).astype(values_t.dtype)
    return (values_t @ p.swapaxes(-1, -2)).swapaxes(-1, -2)  # (B, nh, hs, T) -> (B, nh, T, hs)


def make_cache(model: "GPT") -> list[KVCache]:
    return [KVCache() for _ in model.blocks]


def make_static_cache(model: "GPT", batch: int, capacity: int, dtype=None) -> list[StaticKVCache]:
    if capacity > model.config.max_seq_len:
        raise ValueError(f"cache capacity {capacity} exceeds max_seq_len={model.config.max_seq_len}")
    dtype = dtype or model.wte.weight.dtype
    return [StaticKVCache.empty(batch, model.config, capacity, dtype) for _ in model.blocks]
