"""reference.decode_kernels: the fused CUDA kernels of batched decoding.

On every machine: the decoder's plumbing around the kernels (which position is written, how many positions are
valid, the layout of the output) is checked by running the fused path with MLX-operation stand-ins of the three
kernels (`emulated`), which must give the written-out path's greedy tokens exactly (fp32). On a CUDA GPU: each
kernel against its stand-in on random data, and greedy tokens with the kernels against the written-out form."""
from __future__ import annotations

import math

import mlx.core as mx
import numpy as np
import pytest

from reference import decode_kernels as K
from reference.config import ModelConfig
from reference.generate import generate_tokens
from reference.model import build_model, randomize

on_cuda = pytest.mark.skipif(not K.enabled(), reason="needs MLX on a CUDA GPU (HARNESS_DECODE_KERNELS not 0)")
# the stand-ins against the written-out form: exact in fp32 on a CPU; on a GPU the written-out form's matmuls run
# in TF32 and sampled tokens part at near-ties (the kernels' own tests below apply there)
off_cuda = pytest.mark.skipif(K.enabled(), reason="the stand-ins are checked on a CPU; the kernels' tests run here")


# --- MLX-operation stand-ins with the kernels' contracts ------------------------------------------------------

def recent_write_ops(rk, rv, qkv, at):
    B, H, R, D = rk.shape
    C = H * D
    k = qkv[:, C:2 * C].reshape(B, H, 1, D).astype(rk.dtype)
    v = qkv[:, 2 * C:].reshape(B, H, D, 1).astype(rk.dtype)
    start = mx.reshape(at, (1,)).astype(mx.int32)
    return mx.slice_update(rk, k, start, axes=(2,)), mx.slice_update(rv, v, start, axes=(3,))


def flush_ops(gk, gv, rk, rv, base):
    start = mx.reshape(base, (1,)).astype(mx.int32)
    return (mx.slice_update(gk, rk.astype(gk.dtype), start, axes=(2,)),
            mx.slice_update(gv, rv.astype(gv.dtype), start, axes=(3,)))


def attention_ops(qkv, pk, pv, plen, gk, gv, base, rk, rv, nrec):
    B, H, Gc, D = gk.shape
    C = H * D
    f32 = mx.float32
    q = qkv[:, :C].reshape(B, H, 1, D).astype(f32) / math.sqrt(D)
    neg = mx.array(-float("inf"), f32)

    def part(keys, valid):
        s = q @ keys.astype(f32).swapaxes(-1, -2)  # (B, H, 1, X)
        return mx.where(mx.arange(keys.shape[2]) < valid, s, neg)

    s = mx.concatenate([part(pk, plen), part(gk, base), part(rk, nrec)], axis=-1)
    p = mx.softmax(s, axis=-1)
    P, G = pk.shape[2], Gc
    out = (p[..., :P] @ pv.astype(f32).swapaxes(-1, -2) + p[..., P:P + G] @ gv.astype(f32).swapaxes(-1, -2)
           + p[..., P + G:] @ rv.astype(f32).swapaxes(-1, -2))  # (B, H, 1, D)
    return out.reshape(B, C).astype(qkv.dtype)


@pytest.fixture
def emulated(monkeypatch):
    """The fused path with the stand-ins in place of the CUDA kernels."""
    monkeypatch.setattr(K, "enabled", lambda: True)
    monkeypatch.setattr(K, "recent_write", recent_write_ops)
    monkeypatch.setattr(K, "flush", flush_ops)
    monkeypatch.setattr(K, "attention", attention_ops)


def _model(seed=0):
    cfg = ModelConfig(vocab_size=97, d_model=64, n_layers=2, n_heads=4, d_ff=128, max_seq_len=128, dropout=0.0)
    return randomize(build_model(cfg, seed=seed), seed=seed)


def _tokens(prompt, n, **kw):
    # a fresh model per call: the compiled decode steps are cached on the model and traced with the
    # kernels' choice of their first call
    return generate_tokens(_model(), prompt, n=n, max_tokens=40, **kw).tokens


def test_caches_too_large_for_the_kernels_take_the_written_out_form():
    assert K.fits((100, 16, 320, 64), 256, 8)  # medium, n = 100, 256 + 256 tokens
    assert K.fits((100, 16, 4160, 64), 4096, 8)  # medium's whole context
    assert not K.fits((4, 16, 8192, 64), 8192, 8)  # scores beyond static shared memory
    assert not K.fits((5000, 16, 512, 64), 256, 8)  # flush index beyond 31 bits


def test_written_out_path_is_the_default_off_cuda():
    from reference.kvcache import BATCH_ATTENTION, decode_attention_form
    if not K.enabled():
        assert decode_attention_form() == BATCH_ATTENTION


@off_cuda
@pytest.mark.parametrize("n,per_call", [(5, 8), (3, 4), (4, 1)])
def test_fused_path_gives_the_written_out_tokens(n, per_call, monkeypatch):
    prompt = [5, 17, 3, 88, 41, 9, 60]
    monkeypatch.setattr(K, "enabled", lambda: False)
    want = _tokens(prompt, n, tokens_per_call=per_call)
    with monkeypatch.context() as m:
        m.setattr(K, "enabled", lambda: True)
        m.setattr(K, "recent_write", recent_write_ops)
        m.setattr(K, "flush", flush_ops)
        calls = []
        m.setattr(K, "attention", lambda *a: calls.append(1) or attention_ops(*a))
        got = _tokens(prompt, n, tokens_per_call=per_call)
    assert calls, "the fused path did not run"
    assert got == want
    assert all(len(t) == 40 for t in got)


@off_cuda
def test_fused_path_samples_the_same_draws(emulated, monkeypatch):
    """Sampled (not only greedy) rows: the fused path changes no key split."""
    prompt = [1, 2, 3, 4, 5, 6]
    got = _tokens(prompt, 6, temperature=0.9, top_k=20, seed=7)
    monkeypatch.setattr(K, "enabled", lambda: False)
    assert got == _tokens(prompt, 6, temperature=0.9, top_k=20, seed=7)


# --- the CUDA kernels themselves ------------------------------------------------------------------------

def _rand(shape, dtype, seed):
    return mx.array(np.random.default_rng(seed).standard_normal(shape).astype(np.float32)).astype(dtype)


@on_cuda
@pytest.mark.parametrize("dtype,tol", [(mx.float32, 1e-5), (mx.bfloat16, 3e-2)])
def test_kernels_match_their_stand_ins(dtype, tol):
    B, H, D, Pc, Gc, R = 7, 3, 64, 256, 128, 8
    qkv = _rand((B, 3 * H * D), dtype, 0)
    pk, pv = _rand((1, H, Pc, D), dtype, 1), _rand((1, H, D, Pc), dtype, 2)
    gk, gv = _rand((B, H, Gc, D), dtype, 3), _rand((B, H, D, Gc), dtype, 4)
    rk, rv = _rand((B, H, R, D), dtype, 5), _rand((B, H, D, R), dtype, 6)
    for at in (0, 3, R - 1):
        a = mx.array(at, mx.int32)
        for got, want in zip(K.recent_write(rk, rv, qkv, a), recent_write_ops(rk, rv, qkv, a)):
            assert mx.array_equal(got, want).item()
    for base in (0, 17, Gc - R):
        b = mx.array(base, mx.int32)
        for got, want in zip(K.flush(gk, gv, rk, rv, b), flush_ops(gk, gv, rk, rv, b)):
            assert mx.array_equal(got, want).item()
    for plen, base, nrec in ((256, 0, 1), (130, 17, 5), (1, 120, 8)):
        args = (qkv, pk, pv, mx.array(plen), gk, gv, mx.array(base), rk, rv, mx.array(nrec))
        got, want = K.attention(*args), attention_ops(*args)
        assert got.shape == want.shape == (B, H * D)
        assert mx.allclose(got.astype(mx.float32), want.astype(mx.float32), atol=tol, rtol=tol).item()


@on_cuda
def test_kernels_give_the_written_out_greedy_tokens_fp32(monkeypatch):
    prompt = list(range(3, 60))
    with_kernels = _tokens(prompt, 20)
    monkeypatch.setattr(K, "enabled", lambda: False)
    assert with_kernels == _tokens(prompt, 20)
