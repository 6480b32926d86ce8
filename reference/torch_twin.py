"""The PyTorch twin of reference/model.py: the same architecture under the same parameter names, so one
set of weights runs in both frameworks. It is the comparison baseline for the seed's "MLX is 3.5x faster
than PyTorch" claim and the oracle the property suites check MLX logits against.

Matched details: LayerNorm eps 1e-5 (mlx.nn.LayerNorm's default), exact-erf GELU (mlx.nn.gelu),
Linear weights stored (out, in) in both frameworks, output head tied to `wte.weight` (x @ W.T),
learned positions, dropout after the embedding sum and on both residual branches.

Needs the `torch` extra; nothing else in `reference` imports this module.
"""
from __future__ import annotations

import math
import time
from typing import Sequence

try:
    import torch
    import torch.nn.functional as F
    import torch.utils.checkpoint
    from torch import nn
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("reference.torch_twin needs PyTorch: pip install 'mlx-codegen-harness[torch]'") from e

from .config import ModelConfig
from .errors import InputError


class TorchKVCache:
    """Keys/values of one layer in a buffer grown in chunks of `step` positions, like the MLX KVCache."""

    step = 256

    def __init__(self):
        self.keys = None  # (B, nh, capacity, hs)
        self.values = None
        self.offset = 0

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, H, T, D = k.shape
        prev = self.offset
        if self.keys is None or prev + T > self.keys.shape[2]:
            n = ((prev + T + self.step - 1) // self.step) * self.step
            nk, nv = k.new_zeros((B, H, n, D)), v.new_zeros((B, H, n, D))
            if self.keys is not None and prev:
                nk[:, :, :prev] = self.keys[:, :, :prev]
                nv[:, :, :prev] = self.values[:, :, :prev]
            self.keys, self.values = nk, nv
        self.keys[:, :, prev:prev + T] = k
        self.values[:, :, prev:prev + T] = v
        self.offset = prev + T
        return self.keys[:, :, :self.offset], self.values[:, :, :self.offset]


class TorchStaticCache(nn.Module):
    """Keys/values of one layer in fixed (B, nh, capacity, hs) buffers, written at tensor positions, the
    layout torch.compile's CUDA graphs need (static addresses, no shape change; gpt-fast does the same)."""

    def __init__(self, batch: int, cfg: ModelConfig, capacity: int, dtype, device):
        super().__init__()
        shape = (batch, cfg.n_heads, capacity, cfg.head_dim)
        self.register_buffer("k", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    def update(self, pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        """pos (T,) positions of the new keys; returns all keys, values and the (T, capacity) mask."""
        self.k.index_copy_(2, pos, k.to(self.k.dtype))
        self.v.index_copy_(2, pos, v.to(self.v.dtype))
        mask = torch.arange(self.k.shape[2], device=pos.device)[None, :] <= pos[:, None]
        return self.k, self.v, mask


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.head_dim
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=True)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=True)
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cache=None, pos: torch.Tensor | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        scale = 1.0 / math.sqrt(self.head_dim)
        if isinstance(cache, TorchStaticCache):
            k, v, mask = cache.update(pos, k, v)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
            return self.resid_drop(self.proj(y.transpose(1, 2).reshape(B, T, C)))
        start = cache.offset if cache is not None else 0
        if cache is not None:
            k, v = cache.update(k, v)
        if T == 1:
            y = F.scaled_dot_product_attention(q, k, v, scale=scale)
        elif start == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
        else:
            # torch's is_causal aligns the mask top-left; T new queries after `start` cached keys need it
            # aligned bottom-right: query i sees keys 0..start+i.
            S = k.shape[2]
            mask = torch.arange(S, device=x.device)[None, :] <= (start + torch.arange(T, device=x.device))[:, None]
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.resid_drop(self.proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.d_ff, bias=True)
        self.proj = nn.Linear(cfg.d_ff, cfg.d_model, bias=True)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))  # exact erf GELU


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model, eps=1e-5)
        self.attn = Attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model, eps=1e-5)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cache=None, pos: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache, pos)
        return x + self.mlp(self.ln2(x))


class TorchGPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.max_seq_len, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model, eps=1e-5)
        if not cfg.tie_embeddings:
            self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.checkpoint_blocks = False  # gradient checkpointing: recompute each block in the backward pass

    def forward(self, ids: torch.Tensor, cache: list | None = None, pos: torch.Tensor | None = None) -> torch.Tensor:
        """ids (B, T) -> logits (B, T, V); with `cache`, ids follow cache[0].offset cached tokens. With a
        list of TorchStaticCache, `pos` (T,) gives the positions of the T new tokens."""
        B, T = ids.shape
        if pos is None:
            start = cache[0].offset if cache is not None else 0
            if start + T > self.config.max_seq_len:
                raise ValueError(f"sequence of {start + T} tokens exceeds max_seq_len={self.config.max_seq_len}")
            pos = torch.arange(start, start + T, device=ids.device)
        x = self.drop(self.wte(ids) + self.wpe(pos))
        for i, block in enumerate(self.blocks):
            if self.checkpoint_blocks and self.training and cache is None and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(block, x, None, pos, use_reentrant=False)
            else:
                x = block(x, cache[i] if cache is not None else None, pos)
        x = self.ln_f(x)
        if self.config.tie_embeddings:
            return x @ self.wte.weight.T
        return self.lm_head(x)


def make_cache(model: TorchGPT) -> list[TorchKVCache]:
    return [TorchKVCache() for _ in model.blocks]


def load_mlx_weights(model: TorchGPT, weights: dict) -> TorchGPT:
    """Copy {MLX parameter path: numpy array} into `model`; names and shapes must match exactly."""
    own = model.state_dict()
    missing, extra = sorted(set(own) - set(weights)), sorted(set(weights) - set(own))
    if missing or extra:
        raise InputError(f"weights do not match TorchGPT({model.config}): missing {missing[:5]}, "
                         f"unexpected {extra[:5]}; were they written for a different model config?")
    with torch.no_grad():
        for name, t in own.items():
            w = torch.as_tensor(weights[name])
            if tuple(w.shape) != tuple(t.shape):
                raise InputError(f"weight {name} has shape {tuple(w.shape)}, the model expects {tuple(t.shape)}")
            t.copy_(w.to(t.dtype))
    return model


def from_mlx(mlx_model) -> TorchGPT:
    """A TorchGPT (eval mode, fp32) holding a copy of an MLX GPT's weights."""
    import mlx.core as mx
    import numpy as np
    from mlx.utils import tree_flatten

    weights = {k: np.array(v.astype(mx.float32)) for k, v in tree_flatten(mlx_model.parameters())}
    return load_mlx_weights(TorchGPT(mlx_model.config), weights).eval()


def static_caches(model: TorchGPT, batch: int, capacity: int) -> list[TorchStaticCache]:
    """Static caches for `model`, kept on it and reused by later calls of the same shape: CUDA graphs
    recorded over these buffers replay without re-recording (stale keys beyond the prompt are masked)."""
    pool = model.__dict__.setdefault("_static_cache_pool", {})
    key = (batch, capacity, model.wte.weight.dtype, model.wte.weight.device)
    if key not in pool:
        pool[key] = [TorchStaticCache(batch, model.config, capacity, model.wte.weight.dtype, model.wte.weight.device)
                     for _ in model.blocks]
    return pool[key]


def _greedy_step(model: TorchGPT, caches, tok: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """One decode step with static caches: tok (B,) at position pos (1,) -> next greedy tok (B,)."""
    return model(tok[:, None], caches, pos)[:, -1].argmax(dim=-1)


_COMPILED_STEPS: dict = {}


def decode_step(compile_mode: str | None):
    """The decode step, eager or torch.compile'd (mode "reduce-overhead" captures it in CUDA graphs)."""
    if compile_mode is None:
        return _greedy_step
    if compile_mode not in _COMPILED_STEPS:
        _COMPILED_STEPS[compile_mode] = torch.compile(_greedy_step, mode=compile_mode, fullgraph=True)
    return _COMPILED_STEPS[compile_mode]


@torch.no_grad()
def torch_generate(model: TorchGPT, prompt_ids: Sequence[int], max_tokens: int, *, n: int = 1,
                   stop_ids: Sequence[int] = (), use_cache: bool = True, compile_mode: str | None = None):
    """Greedy decoding, timed like reference.generate.generate_tokens (the speed baseline). Returns a
    reference.generate.GenerationResult. Rows run to `max_tokens` or the context limit unless every row
    has emitted a stop id.

    With a cache (the default): static caches of capacity prompt + budget rounded up to 256, the prompt
    prefilled for the n rows, then one decode step per token, eager or compiled with `compile_mode`
    ("reduce-overhead": CUDA graphs). As in the MLX generator, step t+1 is queued before token t is read
    back (on CUDA through a pinned buffer and an event, so reading does not wait for step t+1)."""
    from .generate import CACHE_STEP, _fit_prompt, timed_result

    model.eval()
    ctx = model.config.max_seq_len
    prompt, dropped = _fit_prompt(prompt_ids, ctx, max_tokens, False)
    budget = min(max_tokens, ctx - len(prompt))
    out = [[] for _ in range(n)]
    done = [False] * n
    stops = set(int(s) for s in stop_ids)
    dev = model.wte.weight.device
    cuda = dev.type == "cuda"
    t0 = time.perf_counter()
    t_first = None
    seq = torch.tensor([prompt], dtype=torch.long, device=dev).repeat(n, 1)
    if use_cache:
        cap = min(ctx, -(-(len(prompt) + budget) // CACHE_STEP) * CACHE_STEP)
        caches = static_caches(model, n, cap)
        tok = model(seq, caches, torch.arange(len(prompt), device=dev))[:, -1].argmax(dim=-1)
        step_fn = decode_step(compile_mode)
        host = torch.empty((max(budget, 1), n), dtype=torch.long, pin_memory=cuda)
    else:
        tok = model(seq)[:, -1].argmax(dim=-1)

    def read(step, t):
        if not cuda:
            return t.tolist()
        host[step].copy_(t, non_blocking=True)
        ev = torch.cuda.Event()
        ev.record()
        return ev

    for step in range(budget):
        if use_cache:
            pending = read(step, tok)
            if step + 1 < budget:
                pos = torch.full((1,), len(prompt) + step, dtype=torch.long, device=dev)
                nxt = step_fn(model, caches, tok, pos)
                if compile_mode is not None:
                    nxt = nxt.clone()  # CUDA graph outputs are overwritten by the next replay
            if cuda:
                pending.synchronize()
                toks = host[step].tolist()
            else:
                toks = pending
        else:
            toks = tok.tolist()
        if t_first is None:
            t_first = time.perf_counter()
        for i, t in enumerate(toks):
            if not done[i]:
                if t in stops:
                    done[i] = True
                else:
                    out[i].append(t)
        if all(done) or step == budget - 1:
            break
        if use_cache:
            tok = nxt
        else:
            seq = torch.cat([seq, tok[:, None]], dim=1)
            tok = model(seq)[:, -1].argmax(dim=-1)
    return timed_result(out, len(prompt), dropped, ctx, t0, t_first)
