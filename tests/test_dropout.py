"""reference.dropout: 16-bit masks drawn again from their key in the backward pass, from either bit source
(a keyed hash of the element's index, fused into the kernel that applies it, or MLX's threefry bits)."""
import math

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten

from reference.config import ModelConfig
from reference.dropout import (MASKS, Dropout, dropout, effective_rate, hash_dropout_cuda, keep, keep_mask_hash, new_key,
                               threshold)
from reference.losses import lm_loss
from reference.model import build_model


def test_rate_is_p_rounded_to_sixteen_bits():
    assert threshold(0.1) == 6554 and effective_rate(0.1) == pytest.approx(0.1000061, abs=1e-7)
    assert effective_rate(0.0) == 0.0 and effective_rate(1.0) == 1.0
    with pytest.raises(ValueError, match="dropout probability"):
        threshold(1.5)


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_drop_rate_and_mean_match_the_rate(p, mask):
    n = 1_000_000
    kept = np.array(keep(mx.random.key(3), (n,), p, mask))
    rate = 1 - kept.mean()
    sd = math.sqrt(p * (1 - p) / n)
    assert abs(rate - effective_rate(p)) < 5 * sd
    y = np.array(dropout(mx.ones((n,)), mx.random.key(4), p, mask))
    assert set(np.unique(y)) <= {0.0, np.float32(1 / (1 - effective_rate(p)))}
    assert abs(y.mean() - 1) < 5 * sd / (1 - p)


@pytest.mark.parametrize("mask", MASKS)
def test_bits_are_not_correlated_between_neighbours(mask):
    # threefry: the four 16-bit values of one split row come from two 32-bit words; hash: neighbours are
    # consecutive counters. Either way neighbours must be independent.
    kept = np.array(keep(mx.random.key(5), (400_000,), 0.5, mask)).astype(np.float64)
    for lag in (1, 2, 3, 4, 1024):
        r = np.corrcoef(kept[:-lag], kept[lag:])[0, 1]
        assert abs(r) < 0.01, (lag, r)


@pytest.mark.parametrize("mask", MASKS)
def test_same_key_same_mask_other_key_other_mask(mask):
    a = keep(mx.random.key(1), (33, 7), 0.3, mask)
    assert mx.array_equal(a, keep(mx.random.key(1), (33, 7), 0.3, mask))
    assert not mx.array_equal(a, keep(mx.random.key(2), (33, 7), 0.3, mask))
    assert keep(mx.random.key(1), (5,), 0.3, mask).shape == (5,)  # sizes that are not a multiple of 4


def test_hash_masks_of_keys_that_differ_in_one_word_are_uncorrelated():
    n = 200_000
    base = np.array(keep(mx.array([5, 7], mx.uint32), (n,), 0.5, "hash")).astype(np.float64)
    for other in ([5, 8], [6, 7], [7, 5]):
        r = np.corrcoef(base, np.array(keep(mx.array(other, mx.uint32), (n,), 0.5, "hash")))[0, 1]
        assert abs(r) < 0.015, (other, r)


def test_hash_mask_is_a_function_of_the_flat_index_and_compiles_to_the_same_bits():
    key = mx.random.key(9)
    a = keep(key, (6, 5, 11), 0.3, "hash")
    assert mx.array_equal(a.reshape(-1), keep(key, (330,), 0.3, "hash"))
    assert mx.array_equal(mx.compile(lambda k: keep(k, (6, 5, 11), 0.3, "hash"))(key), a)
    with pytest.raises(ValueError, match="32 bits"):
        keep_mask_hash(key, (1 << 16, 1 << 16), 0.3)
    with pytest.raises(ValueError, match="dropout mask"):
        keep(key, (3,), 0.3, "philox")


@pytest.mark.parametrize("mask", MASKS)
def test_gradient_is_the_mask_times_the_scale_and_keeps_the_dtype(mask):
    key = mx.random.key(7)
    x = mx.random.normal((6, 11))
    w = mx.random.normal((6, 11))
    g = mx.grad(lambda x: (w * dropout(x, key, 0.4, mask)).sum())(x)
    kept = keep(key, x.shape, 0.4, mask)
    expected = mx.where(kept, w / (1 - effective_rate(0.4)), 0.0)
    assert mx.allclose(g, expected, atol=1e-6)
    assert mx.array_equal(dropout(x, key, 0.4, mask) != 0, kept)
    xb = x.astype(mx.bfloat16)
    assert dropout(xb, key, 0.4, mask).dtype == mx.bfloat16
    assert mx.grad(lambda x: dropout(x, key, 0.4, mask).astype(mx.float32).sum())(xb).dtype == mx.bfloat16


@pytest.mark.parametrize("mask", MASKS)
def test_bf16_kept_values_are_scaled_in_fp32(mask):
    """x * 1.1111 with the scale rounded to bf16 first (1.1094) would shrink every kept value by 0.16%; the
    product is formed in fp32 and rounded once, so kept values are x / (1 - rate) rounded to nearest."""
    x = (mx.random.normal((4096,), key=mx.random.key(1)) * 3).astype(mx.bfloat16)
    y = dropout(x, mx.random.key(2), 0.1, mask)
    kept = np.array(y != 0)
    want = (np.array(x.astype(mx.float32)) / (1 - effective_rate(0.1))).astype(np.float32)
    got = np.array(y.astype(mx.float32))
    ratio = got[kept] / want[kept]
    assert abs(ratio.mean() - 1) < 2e-4, ratio.mean()
    assert np.abs(ratio - 1).max() <= 2 ** -8


@pytest.mark.skipif(not mx.cuda.is_available(), reason="needs MLX's CUDA backend")
@pytest.mark.parametrize("dtype", [mx.float32, mx.bfloat16])
def test_cuda_kernel_draws_the_hash_masks_bits(dtype):
    x = mx.random.normal((3, 1000, 37), key=mx.random.key(3)).astype(dtype) + 5  # no zeros in x
    key = mx.array([123, 456789], mx.uint32)
    y = hash_dropout_cuda(x, key, 0.3)
    assert mx.array_equal(y != 0, keep_mask_hash(key, x.shape, 0.3))
    assert mx.allclose(y, mx.where(keep_mask_hash(key, x.shape, 0.3), x / (1 - effective_rate(0.3)), 0), rtol=1e-2)


def test_module_is_identity_in_eval_mode_and_at_zero():
    x = mx.random.normal((4, 8))
    d = Dropout(0.5)
    d.eval()
    assert mx.array_equal(d(x), x)
    z = Dropout(0.0)
    assert mx.array_equal(z(x), x)
    d.train()
    assert not mx.array_equal(d(x), x)


def test_global_seed_governs_fresh_keys():
    mx.random.seed(11)
    a = new_key()
    mx.random.seed(11)
    assert mx.array_equal(a, new_key()) and a.dtype == mx.uint32 and a.shape == (2,)


def _grads(model, x, y, checkpoint, compiled):
    model.checkpoint_blocks = checkpoint
    mx.random.seed(5)
    f = nn.value_and_grad(model, lambda a, b: lm_loss(model, a, b, None))
    if compiled:
        state = [model.state, mx.random.state]
        f = mx.compile(f, inputs=state, outputs=state)
    loss, g = f(x, y)
    return loss, dict(tree_flatten(g))


@pytest.mark.parametrize("compiled", [False, True])
def test_checkpointed_blocks_draw_the_same_masks(compiled):
    # a checkpointed block is run again in the backward pass; with masks from the global generator the rerun
    # drew new ones and the gradients were wrong (0.24 max abs difference on this model)
    cfg = ModelConfig(vocab_size=64, d_model=32, n_heads=2, n_layers=2, d_ff=64, max_seq_len=16, dropout=0.3)
    model = build_model(cfg)
    model.train()
    x = mx.random.randint(0, 64, (2, 16), key=mx.random.key(0))
    y = mx.random.randint(0, 64, (2, 16), key=mx.random.key(1))
    l0, g0 = _grads(model, x, y, False, compiled)
    l1, g1 = _grads(model, x, y, True, compiled)
    assert l0.item() == pytest.approx(l1.item(), rel=1e-6)
    for k in g0:
        assert mx.allclose(g0[k], g1[k], atol=1e-6), k
    # and dropout is really on: another seed gives another loss
    model.checkpoint_blocks = False
    mx.random.seed(6)
    assert lm_loss(model, x, y, None).item() != pytest.approx(l0.item(), rel=1e-6)


def test_masks_are_not_held_for_the_backward_pass():
    """Peak memory of a compiled forward + backward through 12 dropouts: lower than mlx.nn.Dropout's, whose
    random words stay alive until the backward pass (CPU: 876 -> 650 MB at 16 x 1024 x 256)."""

    def peak(make):
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = [nn.Linear(64, 64) for _ in range(12)]
                self.drops = [make(0.1) for _ in range(12)]

            def __call__(self, x):
                for lin, d in zip(self.layers, self.drops):
                    x = x + d(mx.tanh(lin(x)))
                return x

        net = Net()
        mx.eval(net.parameters())
        x = mx.random.normal((8, 256, 64), key=mx.random.key(0))
        state = [net.state, mx.random.state]
        f = mx.compile(nn.value_and_grad(net, lambda x: net(x).square().mean()), inputs=state, outputs=state)
        mx.eval(f(x))
        mx.synchronize()
        mx.reset_peak_memory()
        mx.eval(f(x))
        return mx.get_peak_memory()

    old, new = peak(nn.Dropout), peak(Dropout)
    # On CUDA the saving is smaller: MLX keeps every kernel's inputs until its command buffer completes, so the
    # masks are a smaller share of the peak (H100, MLX 0.32.4: 33.8 -> 32.4 MB here; results/gpu/NOTES.md)
    assert new < (1.0 if mx.cuda.is_available() else 0.9) * old, (old, new)
