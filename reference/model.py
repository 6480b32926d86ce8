"""The seed's GPT in MLX: learned positions, pre-LayerNorm, fused qkv with bias, GELU MLP, dropout,
output head tied to the token embedding, attention through mx.fast.scaled_dot_product_attention, and an
incremental forward with a KV cache for generation.

Two caches: `KVCache` grows in chunks (any number of steps, shapes change as it grows) and
`StaticKVCache` has a fixed capacity and takes its position as an array, so a decode step has one shape
from the first token to the last and compiles once (reference.generate's fast path); `SharedPrefixCache`, its
batched form, keeps the prompt's keys/values once for n rows that continue the same prompt. Its attention is written
out (`static_attention`) and one-row linears skip addmm (`linear`), so that batch-1 decoding on CUDA runs
MLX's gemv kernel instead of cuBLAS (1.6-1.9x faster on an H100: results/gpu/h100/decode-ab.jsonl).

GELU is exact (erf) with a hand-written gradient (`gelu`): autodiff of the erf formula keeps extra
intermediates of the d_ff-wide activation alive for the backward pass; this one keeps only its input.
"""
from __future__ import annotations

import math
import os

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from . import decode_kernels
from .config import ModelConfig
from .dropout import Dropout, new_key


SQRT_HALF = 0.7071067811865476
INV_SQRT_2PI = 0.3989422804014327


@mx.custom_function
def gelu(x: mx.array) -> mx.array:
    """Exact GELU, x * Phi(x), the same function as mlx.nn.gelu and torch.nn.GELU()."""
    return x * (1 + mx.erf(x * SQRT_HALF)) / 2


@gelu.vjp
def _gelu_vjp(primals, cotangent, output):
    x = primals[0] if isinstance(primals, (list, tuple)) else primals
    cot = cotangent[0] if isinstance(cotangent, (list, tuple)) else cotangent
    # d/dx x Phi(x) = Phi(x) + x phi(x), recomputed from x alone
    xf = x.astype(mx.float32)
    d = (1 + mx.erf(xf * SQRT_HALF)) / 2 + xf * mx.exp(-0.5 * xf * xf) * INV_SQRT_2PI
    return ((cot.astype(mx.float32) * d).astype(x.dtype),)


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
        H = self.keys.shape[1]
        self.recent_keys, self.recent_values = decode_kernels.recent_write(self.recent_keys, self.recent_values,
                                                                           qkv, at, H)
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


def linear(layer: nn.Linear, x: mx.array) -> mx.array:
    """layer(x), except that one row (batch-1 decoding) runs as matmul + bias: MLX's CUDA backend sends a
    one-row matmul to its gemv kernel but a matmul with bias (addmm) to cuBLASLt, which it records by stream
    capture into a child graph on every call. Same result up to rounding (the bias is added after the
    product instead of in cuBLAS's epilogue)."""
    if x.size == x.shape[-1] and "bias" in layer:
        return x @ layer.weight.T + layer.bias
    if x.ndim == 3 and x.shape[1] == 1:  # one position of B rows (batched decoding): one (B, d) product
        return layer(x.reshape(x.shape[0], x.shape[2]))[:, None, :]
    return layer(x)


def make_cache(model: "GPT") -> list[KVCache]:
    return [KVCache() for _ in model.blocks]


def make_static_cache(model: "GPT", batch: int, capacity: int, dtype=None) -> list[StaticKVCache]:
    if capacity > model.config.max_seq_len:
        raise ValueError(f"cache capacity {capacity} exceeds max_seq_len={model.config.max_seq_len}")
    dtype = dtype or model.wte.weight.dtype
    return [StaticKVCache.empty(batch, model.config, capacity, dtype) for _ in model.blocks]


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.head_dim = cfg.head_dim
        self.scale = 1.0 / math.sqrt(cfg.head_dim)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=True)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=True)
        self.resid_drop = Dropout(cfg.dropout)

    def __call__(self, x: mx.array, cache: KVCache | None = None, key: mx.array | None = None) -> mx.array:
        B, T, C = x.shape
        qkv = linear(self.qkv, x)
        if T == 1 and isinstance(cache, SharedPrefixCache) and cache.fused():
            y = cache.attend_fused(qkv.reshape(B, 3 * C))
            return self.resid_drop(linear(self.proj, y.reshape(B, 1, C)), key)
        q, k, v = mx.split(qkv, 3, axis=-1)
        # (B, T, C) -> (B, nh, T, hs)
        q = q.reshape(B, T, self.n_heads, self.head_dim).transpose(0, 2, 1, 3)
        k = k.reshape(B, T, self.n_heads, self.head_dim).transpose(0, 2, 1, 3)
        v = v.reshape(B, T, self.n_heads, self.head_dim).transpose(0, 2, 1, 3)
        if isinstance(cache, SharedPrefixCache):
            _, _, mask = cache.update(k, v)
            y = shared_prefix_attention(q, cache, mask, self.scale)
        elif isinstance(cache, StaticKVCache):
            k, v_t, mask = cache.update(k, v)
            y = static_attention(q, k.astype(q.dtype), v_t.astype(q.dtype), mask, self.scale)
        else:
            if cache is not None:
                k, v = cache.update(k, v)
            # A single new query attends to every cached key, so no mask is needed; a block of T>1 new
            # queries after S cached keys needs the causal mask aligned to the end ("causal" does this).
            mask = "causal" if T > 1 else None
            y = mx.fast.scaled_dot_product_attention(q, k, v, scale=self.scale, mask=mask)
        y = y.transpose(0, 2, 1, 3).reshape(B, T, C)
        return self.resid_drop(linear(self.proj, y), key)


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.d_ff, bias=True)
        self.proj = nn.Linear(cfg.d_ff, cfg.d_model, bias=True)
        self.drop = Dropout(cfg.dropout)

    def __call__(self, x: mx.array, key: mx.array | None = None) -> mx.array:
        # exact (erf) GELU, as torch.nn.GELU() defaults to; the twin must match it
        return self.drop(linear(self.proj, gelu(linear(self.fc, x))), key)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg)

    def __call__(self, x: mx.array, cache: KVCache | None = None, key: mx.array | None = None) -> mx.array:
        """`key` (2 uint32 words) fixes the block's two dropout masks; without it they come from the global
        generator."""
        ka = km = None
        if key is not None:
            ka, km = mx.random.split(mx.stop_gradient(key))
        x = x + self.attn(self.ln1(x), cache, ka)
        return x + self.mlp(self.ln2(x), km)


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.max_seq_len, cfg.d_model)
        self.drop = Dropout(cfg.dropout)
        self.blocks = [Block(cfg) for _ in range(cfg.n_layers)]
        self.ln_f = nn.LayerNorm(cfg.d_model)
        if not cfg.tie_embeddings:
            self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.checkpoint_blocks = False  # gradient checkpointing: recompute each block in the backward pass

    def __call__(self, ids: mx.array, cache: list | None = None) -> mx.array:
        """ids (B, T) int -> logits (B, T, V). With `cache`, ids are the next T tokens after
        cache[0].offset cached ones, and the cache is extended in place."""
        return self.head(self.features(ids, cache))

    def head(self, h: mx.array) -> mx.array:
        """Final hidden states (..., d) -> logits (..., V)."""
        if self.config.tie_embeddings:
            return self.wte.as_linear(h)
        return self.lm_head(h)

    def head_weight(self) -> mx.array:
        """The (V, d) output matrix: logits = h @ head_weight().T."""
        return self.wte.weight if self.config.tie_embeddings else self.lm_head.weight

    def features(self, ids: mx.array, cache: list | None = None) -> mx.array:
        """ids (B, T) -> final hidden states after ln_f (B, T, d), the input of the output head."""
        B, T = ids.shape
        if cache is not None and isinstance(cache[0], StaticKVCache):
            if T > cache[0].keys.shape[2]:
                raise ValueError(f"{T} tokens exceed the cache's capacity {cache[0].keys.shape[2]}")
            pos = cache[0].positions(T)
        else:
            start = cache[0].offset if cache is not None else 0
            if start + T > self.config.max_seq_len:
                raise ValueError(f"sequence of {start + T} tokens exceeds max_seq_len={self.config.max_seq_len}")
            pos = mx.arange(start, start + T)
        x = self.wte(ids) + self.wpe(pos)
        x = self.drop(x)
        # in training each block gets its own dropout key, checkpointed or not (so both draw the same masks)
        keyed = self.training and cache is None and self.config.dropout > 0
        for i, block in enumerate(self.blocks):
            if cache is not None:
                x = block(x, cache[i])
            elif self.checkpoint_blocks and self.training:
                # nn.utils.checkpoint passes the block's parameters as inputs; mx.checkpoint(block) would
                # capture them as constants and their gradients would be zero. The backward pass calls the
                # block again: its dropout key is an input, so the recomputation draws the same masks.
                x = nn.utils.checkpoint(block)(x, None, new_key() if keyed else None)
            else:
                x = block(x, None, new_key() if keyed else None)
        if cache is not None and isinstance(cache[0], StaticKVCache):
            for c in cache:
                c.advance(T)
        return self.ln_f(x)


def init_weights(model: GPT, seed: int = 0) -> GPT:
    """GPT-2 initialisation: N(0, 0.02) for matrices and embeddings, zeros for biases, ones/zeros for
    LayerNorm, residual output projections scaled by 1/sqrt(2L) (Radford et al. 2019; nanoGPT)."""
    cfg = model.config
    key = mx.random.key(seed)
    resid_std = 0.02 / math.sqrt(2 * cfg.n_layers)
    flat = dict(tree_flatten(model.parameters()))
    keys = mx.random.split(key, len(flat))
    new = {}
    for (name, p), k in zip(sorted(flat.items()), keys):
        if ".ln" in name or name.startswith("ln_f"):
            new[name] = mx.ones_like(p) if name.endswith("weight") else mx.zeros_like(p)
        elif name.endswith("bias"):
            new[name] = mx.zeros_like(p)
        else:
            std = resid_std if name.endswith("proj.weight") else 0.02
            new[name] = (mx.random.normal(p.shape, key=k) * std).astype(p.dtype)
    model.load_weights(list(new.items()))
    mx.eval(model.parameters())
    return model


def randomize(model: GPT, seed: int = 0, scale: float = 0.4) -> GPT:
    """Weights drawn far from their initial values (N(0, scale), LayerNorm gains around 1), biases and
    LayerNorm parameters included: logits are peaked and every parameter matters. For property tests
    (cache vs full forward, twin agreement), where GPT-2 initialisation would hide mistakes."""
    params = tree_flatten(model.parameters())
    keys = mx.random.split(mx.random.key(seed), len(params))
    new = []
    for (k, p), key in zip(params, keys):
        w = mx.random.normal(p.shape, key=key) * scale
        new.append((k, w + 1.0 if (".ln" in k or k.startswith("ln_f")) and k.endswith("weight") else w))
    model.load_weights(new)
    mx.eval(model.parameters())
    return model.eval()


def count_params(model: nn.Module) -> int:
    return sum(p.size for _, p in tree_flatten(model.parameters()))


def build_model(cfg: ModelConfig, seed: int = 0) -> GPT:
    return init_weights(GPT(cfg), seed)
