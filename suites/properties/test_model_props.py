"""Properties of the reference GPT (reference/model.py) that any correct implementation has:
causal masking, batch independence, KV-cache incremental logits equal to the full forward, greedy
generation unchanged by the cache, and the parameter-count formula equal to the counted parameters.

Tiny random models with non-trivial weights (biases and LayerNorm parameters far from init), fp32.
Logits equal in exact arithmetic are compared at atol = rtol = 1e-4: they differ only by summation order
(observed up to ~2e-5 on logits of magnitude ~1-10 with OpenBLAS), while a masking or cache bug moves
them by O(1)."""
from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference.config import PRESETS, ModelConfig, param_count
from reference.generate import generate_tokens
from reference.kvcache import make_cache, make_static_cache
from reference.model import GPT, count_params, randomize

TOL = dict(atol=1e-4, rtol=1e-4)
VOCAB, CTX = 61, 80


def random_model(cfg: ModelConfig, seed: int = 0, scale: float = 0.4) -> GPT:
    return randomize(GPT(cfg), seed, scale)


@pytest.fixture(scope="module")
def model():
    return random_model(ModelConfig(vocab_size=VOCAB, d_model=48, n_layers=3, n_heads=4, d_ff=96,
                                    max_seq_len=CTX, dropout=0.1))


def logits(m, ids) -> np.ndarray:
    return np.array(m(mx.array(np.asarray(ids, dtype=np.int32))))


tokens = st.lists(st.integers(0, VOCAB - 1), min_size=2, max_size=CTX)


@given(ids=tokens, data=st.data())
def test_causal_masking(model, ids, data):
    """Changing the tokens after position t leaves the logits at positions <= t unchanged."""
    t = data.draw(st.integers(0, len(ids) - 2), label="t")
    changed = list(ids)
    for i in range(t + 1, len(ids)):
        changed[i] = (ids[i] + data.draw(st.integers(1, VOCAB - 1))) % VOCAB
    a, b = logits(model, [ids]), logits(model, [changed])
    np.testing.assert_allclose(b[:, :t + 1], a[:, :t + 1], **TOL)
    assert not np.allclose(b[:, t + 1], a[:, t + 1], **TOL), "position t+1 must see its own (changed) token"


@given(rows=st.integers(2, 5), length=st.integers(1, CTX), seed=st.integers(0, 2**31 - 1))
def test_batch_independence(model, rows, length, seed):
    """Each row's logits are those of the row alone, whatever the other rows hold."""
    rng = np.random.default_rng(seed)
    batch = rng.integers(0, VOCAB, (rows, length))
    together = logits(model, batch)
    other = batch.copy()
    other[1:] = rng.integers(0, VOCAB, (rows - 1, length))
    np.testing.assert_allclose(logits(model, batch[:1]), together[:1], **TOL)
    np.testing.assert_allclose(logits(model, other)[:1], together[:1], **TOL)
    np.testing.assert_allclose(logits(model, batch[-1:]), together[-1:], **TOL)


def feed_in_steps(model, cache, ids, full, sizes, limit) -> int:
    """Feed ids through `cache` in chunks of `sizes` (up to `limit` tokens), checking each chunk's logits
    against the full forward's; returns the number of tokens fed."""
    pos = 0
    for n in sizes:
        n = min(n, limit - pos)
        if n == 0:
            break
        step = np.array(model(mx.array(ids[:, pos:pos + n].astype(np.int32)), cache))
        np.testing.assert_allclose(step, full[:, pos:pos + n], **TOL)
        pos += n
    return pos


@given(prefix=st.integers(1, CTX // 2), steps=st.lists(st.integers(1, 8), min_size=1, max_size=12),
       batch=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
def test_kv_cache_incremental_equals_full_forward(model, prefix, steps, batch, seed):
    """Prefill a prefix, then single- and multi-token steps: each step's logits equal the full forward's."""
    ids = np.random.default_rng(seed).integers(0, VOCAB, (batch, CTX))
    full = logits(model, ids)
    cache = make_cache(model)
    pos = feed_in_steps(model, cache, ids, full, [prefix, *steps], CTX)
    assert cache[0].offset == pos


@given(prefix=st.integers(1, CTX // 2), steps=st.lists(st.integers(1, 8), min_size=1, max_size=12),
       batch=st.integers(1, 3), seed=st.integers(0, 2**31 - 1), slack=st.integers(0, 16))
def test_static_kv_cache_incremental_equals_full_forward(model, prefix, steps, batch, seed, slack):
    """The fixed-capacity cache (positions as arrays, attention masked over the whole buffer) gives the
    full forward's logits for every step, whatever the capacity beyond the tokens written."""
    ids = np.random.default_rng(seed).integers(0, VOCAB, (batch, CTX))
    full = logits(model, ids)
    total = min(CTX, prefix + sum(steps))
    cache = make_static_cache(model, batch, min(CTX, total + slack))
    pos = feed_in_steps(model, cache, ids, full, [prefix, *steps], total)
    assert int(cache[0].offset.item()) == pos


def test_kv_cache_across_buffer_growth():
    """The cache grows in 256-position chunks; steps that straddle a chunk boundary keep the old keys."""
    m = random_model(ModelConfig(vocab_size=VOCAB, d_model=32, n_layers=2, n_heads=2, d_ff=64, max_seq_len=600,
                                 dropout=0.0), seed=1)
    ids = np.random.default_rng(0).integers(0, VOCAB, (2, 600))
    full = logits(m, ids)
    cache = make_cache(m)
    pos = 0
    for n in (250, 3, 1, 10, 250, 6, 80):  # crosses 256 and 512
        np.testing.assert_allclose(np.array(m(mx.array(ids[:, pos:pos + n].astype(np.int32)), cache)),
                                   full[:, pos:pos + n], **TOL)
        pos += n


@given(prompt=st.lists(st.integers(0, VOCAB - 1), min_size=1, max_size=40), n=st.integers(1, 3))
def test_greedy_generation_with_cache_equals_without(model, prompt, n):
    a = generate_tokens(model, prompt, n=n, max_tokens=24)
    b = generate_tokens(model, prompt, n=n, max_tokens=24, use_cache=False)
    assert a.tokens == b.tokens


def test_positions_beyond_the_context_are_refused(model):
    with pytest.raises(ValueError, match="max_seq_len"):
        model(mx.zeros((1, CTX + 1), dtype=mx.int32))


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("tie", [True, False])
def test_param_count_formula_equals_counted(name, tie):
    """Built lazily: constructing GPT(cfg) without mx.eval allocates no weights, so even the 2.1B preset
    is counted from shapes alone."""
    cfg = PRESETS[name].config.with_(tie_embeddings=tie)
    mx.eval(mx.zeros(1))
    before = mx.get_active_memory()
    m = GPT(cfg)
    counted = count_params(m)
    allocated = mx.get_active_memory() - before
    assert counted == param_count(cfg)
    assert allocated < 1 << 20, f"building {name} allocated {allocated:,} bytes; weights should stay lazy"
    del m
