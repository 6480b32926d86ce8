"""The seed's GPT in MLX: learned positions, pre-LayerNorm, fused qkv with bias, GELU MLP, dropout,
output head tied to the token embedding, attention through mx.fast.scaled_dot_product_attention, and an
incremental forward over the KV caches of reference.kvcache for generation. One-row linears skip addmm
(`linear`), so that batch-1 decoding on CUDA runs MLX's gemv kernel instead of cuBLAS.

GELU is exact (erf) with a hand-written gradient (`gelu`): autodiff of the erf formula keeps extra
intermediates of the d_ff-wide activation alive for the backward pass; this one keeps only its input.
"""
from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from .config import ModelConfig
from .dropout import Dropout, new_key
from .kvcache import KVCache, SharedPrefixCache, StaticKVCache, shared_prefix_attention, static_attention


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
