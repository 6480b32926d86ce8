"""Properties of the reference trainer: it can overfit one batch; k accumulated micro-batches are one k-times
batch; the batch sampler is resumable, shards exactly across data-parallel ranks, and visits every window
once per epoch; the learning-rate schedule stays within its bounds."""
from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlx.utils import tree_flatten

from reference.batches import BatchSampler
from reference.errors import InputError
from reference.model import build_model
from reference.schedule import Schedule, lr_at
from reference.train import TrainConfig, make_optimizer, make_train_step

TINY = {"d_model": 32, "n_layers": 2, "n_heads": 2, "d_ff": 64, "max_seq_len": 16}
V = 101


def _cfg(**kw) -> TrainConfig:
    base = dict(preset="small", model=TINY, seq_len=16, batch_size=4, lr=1e-2, warmup=0, steps=100, dropout=0.0,
                compile=False)
    base.update(kw)
    return TrainConfig(**base)


def _rows(seed: int, n: int, T: int = 16) -> tuple[mx.array, mx.array]:
    x = np.random.default_rng(seed).integers(0, V, (n, T + 1)).astype(np.int32)
    return mx.array(x[:, :-1]), mx.array(x[:, 1:])


def test_loss_falls_when_overfitting_one_batch():
    cfg = _cfg(steps=60, min_lr=1e-2, weight_decay=0.0)
    model = build_model(cfg.model_config(V), seed=0)
    step = make_train_step(model, make_optimizer(cfg), cfg)
    batch = [_rows(0, 4)]
    losses = []
    for _ in range(60):
        loss, _ = step(batch)
        mx.eval(step.state, loss)
        losses.append(loss.item())
    assert losses[0] == pytest.approx(np.log(V), rel=0.05)  # GPT-2 init starts near uniform
    assert losses[-1] < 0.25 * losses[0], losses[::10]  # random tokens, memorised


@settings(max_examples=10)
@given(k=st.integers(1, 4), b=st.integers(1, 3), seed=st.integers(0, 2**16), clip=st.sampled_from([0.0, 0.1, 1.0]))
def test_accumulation_equals_one_big_batch(k, b, seed, clip):
    """Same loss, gradient norm and updated weights. Adam's eps is raised to 1e-3 here: with the default
    1e-8 a weight whose gradient is ~0 (e.g. the key bias, whose gradient vanishes in exact arithmetic
    because softmax ignores a uniform shift of the scores) moves by ~lr * sign(rounding noise), so two
    correct computations that round differently may disagree by ~lr in such weights. With eps = 1e-3
    the update is smooth in the gradient. Weights: atol 1e-6 = 1e-4 of a step (lr 1e-2), since gradient
    sums with cancellation carry ~1e-5..1e-4 relative fp32 error in the smallest components."""
    x, y = _rows(seed, k * b)
    out = []
    for accum, bs, batches in ((1, k * b, [(x, y)]),
                               (k, b, [(x[i * b:(i + 1) * b], y[i * b:(i + 1) * b]) for i in range(k)])):
        cfg = _cfg(accum=accum, batch_size=bs, grad_clip=clip, eps=1e-3)
        model = build_model(cfg.model_config(V), seed=seed)
        step = make_train_step(model, make_optimizer(cfg), cfg)
        for _ in range(2):
            loss, norm = step(batches)
            mx.eval(step.state, loss, norm)
        out.append((loss.item(), norm.item(), dict(tree_flatten(model.parameters()))))
    (l1, n1, w1), (l2, n2, w2) = out
    assert l2 == pytest.approx(l1, rel=1e-5) and n2 == pytest.approx(n1, rel=1e-4)
    for name in w1:
        np.testing.assert_allclose(np.array(w2[name]), np.array(w1[name]), rtol=1e-5, atol=1e-6, err_msg=name)


@st.composite
def sampler_args(draw):
    seq_len = draw(st.integers(1, 12))
    world = draw(st.sampled_from([1, 2, 4]))
    batch = world * draw(st.integers(1, 3))
    n_tokens = draw(st.integers(seq_len + 1, 400))
    return n_tokens, seq_len, batch, world, draw(st.integers(0, 2**31 - 1))


@given(sampler_args(), st.integers(0, 30), st.integers(1, 10))
def test_sampler_resumes_exactly(args, before, after):
    n, T, B, W, seed = args
    toks = np.arange(n, dtype=np.uint16)
    a = BatchSampler(toks, T, B, seed)
    for _ in range(before):
        a.next()
    b = BatchSampler(toks, T, B, seed)
    b.load_state_dict(a.state_dict())
    for _ in range(after):
        xa, ya = a.next()
        xb, yb = b.next()
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)


@given(sampler_args(), st.integers(1, 8))
def test_rank_shards_make_up_the_single_process_batch(args, steps):
    n, T, B, W, seed = args
    toks = np.arange(n, dtype=np.uint16)
    single = BatchSampler(toks, T, B, seed)
    ranks = [BatchSampler(toks, T, B, seed, rank=r, world=W) for r in range(W)]
    for _ in range(steps):
        x, y = single.next()
        parts = [s.next() for s in ranks]
        assert np.array_equal(np.concatenate([p[0] for p in parts]), x)
        assert np.array_equal(np.concatenate([p[1] for p in parts]), y)


@given(sampler_args())
def test_windows_are_contiguous_and_an_epoch_visits_each_once(args):
    n, T, B, W, seed = args
    toks = np.arange(n, dtype=np.uint32)  # token value == position, so windows reveal their offsets
    s = BatchSampler(toks, T, 1, seed)
    starts = []
    for _ in range(s.n_windows):
        x, y = s.next()
        assert x.shape == (1, T) and np.array_equal(x[0, 1:], y[0, :-1])
        assert np.array_equal(np.diff(np.concatenate([x[0], y[0, -1:]])), np.ones(T))  # contiguous
        assert 0 <= x[0, 0] and y[0, -1] < n
        starts.append(int(x[0, 0]))
    assert len(set(starts)) == s.n_windows == n // (T + 1)
    assert len({st % (T + 1) for st in starts}) == 1  # one shift per epoch: windows never overlap
    assert s.state.epoch == 1 and s.state.cursor == 0


def test_sampler_rejects_too_little_data_and_bad_sharding():
    with pytest.raises(InputError, match="fewer than one sequence"):
        BatchSampler(np.arange(8, dtype=np.uint16), 8, 2, 0)
    with pytest.raises(InputError, match="not divisible"):
        BatchSampler(np.arange(100, dtype=np.uint16), 8, 3, 0, world=2)


@given(lr=st.floats(1e-6, 1.0), frac=st.floats(0.0, 1.0), warmup=st.integers(0, 50), decay=st.integers(1, 500))
def test_schedule_stays_within_bounds(lr, frac, warmup, decay):
    s = Schedule(lr, lr * frac, warmup, decay)
    values = [lr_at(s, i) for i in range(max(warmup, decay) + 20)]
    assert all(0 < v <= lr * (1 + 1e-12) or v == s.min_lr for v in values)
    after = values[warmup:]
    assert all(a >= b - 1e-12 for a, b in zip(after, after[1:]))  # never rises after the warm-up
    assert values[-1] == pytest.approx(s.min_lr)
