"""The speed and memory paths must compute the same functions as the plain ones: GELU with its
hand-written gradient, the chunked head + cross-entropy, the compiled static-cache decoder."""
from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from reference.config import ModelConfig
from reference.generate import decode_step, generate_tokens
from reference.losses import cross_entropy, linear_cross_entropy, lm_loss
from reference.kvcache import static_attention
from reference.model import GPT, gelu, linear, randomize
from reference.train import make_loss_and_grad


def rel(a, b) -> float:
    a, b = np.array(a.astype(mx.float32)), np.array(b.astype(mx.float32))
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


@pytest.mark.parametrize("dtype", [mx.float32, mx.bfloat16])
def test_gelu_value_and_gradient_equal_autodiff_of_erf_formula(dtype):
    x = (mx.random.normal((64, 96), key=mx.random.key(0)) * 3).astype(dtype)
    w = mx.random.normal((64, 96), key=mx.random.key(1)).astype(dtype)
    assert rel(gelu(x), nn.gelu(x)) < (1e-6 if dtype == mx.float32 else 1e-2)
    ga = mx.grad(lambda z: (gelu(z) * w).astype(mx.float32).sum())(x)
    gb = mx.grad(lambda z: (nn.gelu(z) * w).astype(mx.float32).sum())(x)
    assert ga.dtype == dtype
    assert rel(ga, gb) < (1e-5 if dtype == mx.float32 else 2e-2)
    gc = mx.compile(mx.grad(lambda z: (gelu(z) * w).astype(mx.float32).sum()))(x)
    assert rel(gc, gb) < (1e-5 if dtype == mx.float32 else 2e-2)


@pytest.mark.parametrize("T", [1, 3])
@pytest.mark.parametrize("dtype", [mx.float32, mx.bfloat16])
def test_static_attention_equals_masked_sdpa(T, dtype):
    """The written-out attention over a static cache (values stored transposed) is the fused op's
    function with the same mask; positions past the mask do not leak in."""
    k = mx.random.split(mx.random.key(5), 3)
    B, H, cap, D = 2, 3, 16, 8
    q = mx.random.normal((B, H, T, D), key=k[0]).astype(dtype)
    keys = mx.random.normal((B, H, cap, D), key=k[1]).astype(dtype)
    values = mx.random.normal((B, H, cap, D), key=k[2]).astype(dtype)
    offset = 5
    mask = mx.arange(cap)[None, :] <= (offset + mx.arange(T))[:, None]
    want = mx.fast.scaled_dot_product_attention(q, keys, values, scale=0.3, mask=mask)
    got = static_attention(q, keys, values.swapaxes(2, 3), mask, 0.3)
    assert got.shape == want.shape and got.dtype == dtype
    assert rel(got, want) < (1e-5 if dtype == mx.float32 else 2e-2)
    poisoned = mx.where((mx.arange(cap) > offset + T - 1)[:, None], mx.array(1e4, dtype), values)
    assert rel(static_attention(q, keys, poisoned.swapaxes(2, 3), mask, 0.3), want) < \
        (1e-5 if dtype == mx.float32 else 2e-2)


@pytest.mark.parametrize("shape", [(1, 1, 12), (1, 12), (3, 1, 12), (1, 4, 12)])
def test_linear_equals_layer(shape):
    """One row goes through matmul + bias, more rows through the layer: the same values either way."""
    layer = nn.Linear(12, 7)
    x = mx.random.normal(shape, key=mx.random.key(2))
    assert rel(linear(layer, x), layer(x)) < 1e-6
    nobias = nn.Linear(12, 7, bias=False)
    assert rel(linear(nobias, x), nobias(x)) < 1e-6


@pytest.mark.parametrize("chunk", [7, 64, 1000])
def test_linear_cross_entropy_equals_plain_loss_and_gradients(chunk):
    """Chunk sizes that divide the rows, do not, and exceed them."""
    k = mx.random.split(mx.random.key(3), 3)
    h = mx.random.normal((2, 50, 16), key=k[0])
    w = mx.random.normal((37, 16), key=k[1]) * 0.5
    y = mx.random.randint(0, 37, (2, 50), key=k[2])
    plain = mx.value_and_grad(lambda h_, w_: cross_entropy(h_ @ w_.T, y), argnums=(0, 1))
    fused = mx.value_and_grad(lambda h_, w_: linear_cross_entropy(h_, w_, y, chunk) * 3.0, argnums=(0, 1))
    (lp, (dhp, dwp)), (lf, (dhf, dwf)) = plain(h, w), fused(h, w)
    assert abs(lf.item() - 3 * lp.item()) < 1e-5 * abs(lp.item())
    assert dhf.shape == h.shape and dwf.shape == w.shape
    assert rel(dhf, 3 * dhp) < 1e-5 and rel(dwf, 3 * dwp) < 1e-5


def small_model(seed=0, tie=True, dropout=0.0) -> GPT:
    cfg = ModelConfig(vocab_size=61, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_seq_len=64, dropout=dropout,
                      tie_embeddings=tie)
    return randomize(GPT(cfg), seed, 0.3).train()


@pytest.mark.parametrize("tie", [True, False])
def test_training_gradients_equal_with_and_without_chunked_loss(tie):
    m = small_model(tie=tie)
    rng = np.random.default_rng(0)
    x, y = (mx.array(rng.integers(0, 61, (3, 20)).astype(np.int32)) for _ in range(2))
    la, ga = make_loss_and_grad(m, "float32", 0)(x, y)
    lb, gb = make_loss_and_grad(m, "float32", 16)(x, y)
    assert abs(la.item() - lb.item()) < 1e-6 * abs(la.item())
    assert abs(lm_loss(m, x, y, None).item() - la.item()) < 1e-6 * abs(la.item())
    from mlx.utils import tree_flatten

    fa, fb = dict(tree_flatten(ga)), dict(tree_flatten(gb))
    assert fa.keys() == fb.keys()
    for k in fa:
        assert rel(fb[k], fa[k]) < 1e-4, k


def test_static_decoder_matches_uncached_generation_greedy_and_sampled():
    m = small_model(seed=4).eval()
    prompt = list(range(1, 12))
    a = generate_tokens(m, prompt, max_tokens=40, temperature=0)
    b = generate_tokens(m, prompt, max_tokens=40, temperature=0, use_cache=False)
    assert a.tokens == b.tokens and len(a.tokens[0]) == 40
    c = generate_tokens(m, prompt, n=3, max_tokens=30, temperature=0.9, top_k=20, top_p=0.9, seed=5)
    d = generate_tokens(m, prompt, n=3, max_tokens=30, temperature=0.9, top_k=20, top_p=0.9, seed=5, use_cache=False)
    assert c.tokens == d.tokens
    full = generate_tokens(m, [1] * 60, max_tokens=40)  # context 64: 4 new tokens, then full
    assert len(full.tokens[0]) == 4 and full.hit_context_limit


def test_static_decoder_follows_weight_updates():
    """The compiled step takes the parameters as inputs: new weights give new tokens, not stale ones."""
    m = small_model(seed=1).eval()
    a = generate_tokens(m, [1, 2, 3], max_tokens=20)
    assert decode_step(m, 0.0, 0, 1.0) is decode_step(m, 0.0, 0, 1.0)
    m.update(small_model(seed=2).parameters())
    b = generate_tokens(m, [1, 2, 3], max_tokens=20)
    assert b.tokens == generate_tokens(m, [1, 2, 3], max_tokens=20, use_cache=False).tokens
    assert a.tokens != b.tokens


def test_static_decoder_stops_rows_independently():
    m = small_model(seed=7).eval()
    ref = generate_tokens(m, [5, 6], n=2, max_tokens=30, temperature=1.0, seed=11)
    stop = ref.tokens[0][3]
    r = generate_tokens(m, [5, 6], n=2, max_tokens=30, temperature=1.0, seed=11, stop_ids=[stop])
    for full, cut in zip(ref.tokens, r.tokens):
        assert cut == (full[:full.index(stop)] if stop in full else full)


@pytest.mark.parametrize("per_call", [2, 4, 7])
def test_several_tokens_per_compiled_call_give_the_same_tokens(per_call):
    """Budgets that are and are not multiples of the call size, sampling, stop ids and the context limit."""
    m = small_model(seed=3).eval()
    for prompt, budget, kw in (([1, 2, 3], 13, dict(temperature=0.0, top_k=0, top_p=1.0)),
                               ([4, 5], 16, dict(temperature=0.9, top_k=10, top_p=0.95)),
                               ([1] * 55, 9, dict(temperature=0.0, top_k=0, top_p=1.0))):
        args = dict(n=3, max_tokens=budget, seed=1, **kw)
        one = generate_tokens(m, prompt, tokens_per_call=1, **args)
        many = generate_tokens(m, prompt, tokens_per_call=per_call, **args)
        assert one.tokens == many.tokens and all(len(t) == min(budget, 64 - len(prompt)) for t in many.tokens)
        stop = one.tokens[1][budget // 2]
        a = generate_tokens(m, prompt, tokens_per_call=1, stop_ids=[stop], **args)
        b = generate_tokens(m, prompt, tokens_per_call=per_call, stop_ids=[stop], **args)
        assert a.tokens == b.tokens


def test_bf16_validation_casts_a_copy_and_keeps_fp32_masters():
    from mlx.utils import tree_flatten

    from reference.train import TrainConfig, make_eval_fn

    m = small_model(seed=5, dropout=0.1).eval()
    rng = np.random.default_rng(1)
    x, y = (mx.array(rng.integers(0, 61, (2, 16)).astype(np.int32)) for _ in range(2))
    a = make_eval_fn(m, TrainConfig(dtype="float32"))(x, y).item()
    b = make_eval_fn(m, TrainConfig(dtype="bfloat16"))(x, y).item()
    assert a != b and abs(a - b) < 0.02 * abs(a)
    assert {v.dtype for _, v in tree_flatten(m.parameters())} == {mx.float32}
    assert make_eval_fn(m, TrainConfig(dtype="float32"))(x, y).item() == a
