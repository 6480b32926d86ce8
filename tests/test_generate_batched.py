"""n rows of one prompt decoded together (the pass@k case): the shared-prompt layout (SharedPrefixCache, its
per-call buffers flushed once per call) gives the tokens of the per-row layout it replaced and of decoding
without a cache, and each row equals an independent batch-1 decode (greedy; fp32 on CPU)."""
from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

import reference.generate as G
from reference.config import ModelConfig
from reference.kvcache import SharedPrefixCache, make_static_cache
from reference.model import GPT, randomize


@pytest.fixture(scope="module")
def model():
    cfg = ModelConfig(vocab_size=64, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_seq_len=96, dropout=0.1,
                      tie_embeddings=True)
    return randomize(GPT(cfg), 0, 0.5)


def _decode(model, prompt, layout, monkeypatch, **kw):
    monkeypatch.setattr(G, "BATCH_LAYOUT", layout)
    return G.generate_tokens(model, prompt, **kw)


@pytest.mark.parametrize("plen,n,per_call", [(5, 3, None), (30, 4, 3), (60, 2, 8)])
def test_shared_layout_gives_the_same_tokens(model, plen, n, per_call, monkeypatch):
    prompt = [int(t) for t in np.random.default_rng(plen).integers(0, 64, plen)]
    kw = dict(n=n, max_tokens=40, tokens_per_call=per_call)
    shared = _decode(model, prompt, "shared", monkeypatch, **kw)
    repeat = _decode(model, prompt, "repeat", monkeypatch, **kw)
    uncached = G.generate_tokens(model, prompt, n=n, max_tokens=40, use_cache=False)
    single = _decode(model, prompt, "shared", monkeypatch, n=1, max_tokens=40)
    assert shared.tokens == repeat.tokens == uncached.tokens
    assert all(t == single.tokens[0] for t in shared.tokens)
    assert shared.hit_context_limit == repeat.hit_context_limit


@pytest.mark.parametrize("temperature,top_p", [(0.8, 1.0), (1.0, 0.9)])
def test_shared_layout_draws_the_same_samples(model, temperature, top_p, monkeypatch):
    prompt = list(range(1, 12))
    kw = dict(n=5, max_tokens=30, temperature=temperature, top_p=top_p, seed=3, stop_ids=[7, 9])
    shared = _decode(model, prompt, "shared", monkeypatch, **kw)
    repeat = _decode(model, prompt, "repeat", monkeypatch, **kw)
    assert shared.tokens == repeat.tokens
    assert len({tuple(t) for t in shared.tokens}) > 1  # sampled rows differ


def test_shared_layout_stops_at_the_context_limit(model, monkeypatch):
    prompt = [int(t) for t in np.random.default_rng(9).integers(0, 64, 90)]
    shared = _decode(model, prompt, "shared", monkeypatch, n=3, max_tokens=40)
    repeat = _decode(model, prompt, "repeat", monkeypatch, n=3, max_tokens=40)
    assert shared.tokens == repeat.tokens and all(len(t) == 6 for t in shared.tokens)
    assert shared.hit_context_limit


def test_batched_rows_match_batch_one_logits(model):
    """One step over a SharedPrefixCache: every row's logits equal the batch-1 static-cache step's."""
    prompt = mx.array([[3, 1, 4, 1, 5, 9, 2, 6]], dtype=mx.int32)
    one = make_static_cache(model, 1, 32)
    model(prompt, one)
    tok = mx.array([[7]], dtype=mx.int32)
    ref = model(tok, one)[:, -1]
    pre = make_static_cache(model, 1, 32)
    model(prompt, pre)
    cfg, n = model.config, 4
    caches = [SharedPrefixCache(mx.zeros((n, cfg.n_heads, 16, cfg.head_dim)), mx.zeros((n, cfg.n_heads, cfg.head_dim, 16)),
                                mx.array(0, mx.int32), c.keys, c.values, mx.array(8, mx.int32), recent=2)
              for c in pre]
    out = model(mx.repeat(tok, n, axis=0), caches)[:, -1]
    np.testing.assert_allclose(np.array(out), np.repeat(np.array(ref), n, axis=0), rtol=1e-4, atol=1e-4)


def test_stop_checker_agrees_with_whole_decoding():
    class Tok:
        def decode(self, ids, skip_special_tokens=True):
            return "".join(chr(97 + i % 26) if i < 26 else "\n" for i in ids)
    tok = Tok()
    decode = lambda ids: tok.decode(ids)  # noqa: E731
    check = G._stop_checker(tok, decode, ["\n\n", "xyz"])
    rows = [[0, 1, 26], [0, 26, 26], [23, 24, 25], [1] * 40 + [23, 24, 25], [26, 2, 26]]
    for r in rows:
        for i in range(1, len(r) + 1):
            assert check(r[:i]) == any(s in decode(r[:i]) for s in ["\n\n", "xyz"])
