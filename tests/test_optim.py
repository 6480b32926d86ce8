"""reference.optim (AdamW with bias correction, decay mask, clipping) and reference.schedule against
PyTorch's definitions (torch.optim.AdamW, torch.nn.utils.clip_grad_norm_) and nanoGPT's get_lr."""
from __future__ import annotations

import math

import mlx.core as mx
import numpy as np
import pytest

from reference.optim import AdamW, clip_by_global_norm, decays, global_norm, state_from_flat, state_to_flat
from reference.schedule import Schedule, lr_at, mlx_schedule

torch = pytest.importorskip("torch")

SHAPES = {"wte.weight": (12, 6), "blocks.0.fc.weight": (5, 6), "blocks.0.fc.bias": (5,), "ln_f.weight": (6,)}


def _params(seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()}


def _nest(flat):
    from mlx.utils import tree_unflatten

    return tree_unflatten([(k, mx.array(v)) for k, v in flat.items()])


def test_adamw_matches_torch_over_steps_with_schedule_and_decay_mask():
    sched = Schedule(lr=1e-2, min_lr=1e-3, warmup=3, decay_steps=10)
    p0 = _params()
    grads = [_params(100 + i) for i in range(10)]
    opt = AdamW(mlx_schedule(sched), betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    params = _nest(p0)
    tparams = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in p0.items()}
    decay = [p for k, p in tparams.items() if p.ndim >= 2]
    no_decay = [p for k, p in tparams.items() if p.ndim < 2]
    topt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=sched.lr, betas=(0.9, 0.95), eps=1e-8)
    for i, g in enumerate(grads):
        params = opt.apply_gradients(_nest(g), params)
        for group in topt.param_groups:
            group["lr"] = lr_at(sched, i)
        for k, p in tparams.items():
            p.grad = torch.tensor(g[k])
        topt.step()
    from mlx.utils import tree_flatten

    for k, v in tree_flatten(params):
        np.testing.assert_allclose(np.array(v), tparams[k].detach().numpy(), rtol=2e-5, atol=2e-6, err_msg=k)


def test_decay_mask_is_ndim_2_and_up_including_embeddings():
    assert decays(mx.zeros((4, 3))) and decays(mx.zeros((2, 2, 2)))
    assert not decays(mx.zeros((4,)))
    # zero gradient after a first real step: only decaying tensors move through the decay term
    opt = AdamW(1e-1, weight_decay=0.5)
    params = _nest({k: np.ones(s, np.float32) for k, s in SHAPES.items()})
    zero = _nest({k: np.zeros(s, np.float32) for k, s in SHAPES.items()})
    new = opt.apply_gradients(zero, params)
    assert np.allclose(np.array(new["wte"]["weight"]), 1 - 0.1 * 0.5)
    assert np.allclose(np.array(new["blocks"][0]["fc"]["weight"]), 0.95)
    assert np.allclose(np.array(new["blocks"][0]["fc"]["bias"]), 1.0)
    assert np.allclose(np.array(new["ln_f"]["weight"]), 1.0)


def test_first_step_moves_each_weight_by_lr_thanks_to_bias_correction():
    # with bias correction the first update is lr * g / (|g| + eps') = lr * sign(g); without it, ~3x smaller
    opt = AdamW(1e-2, betas=(0.9, 0.95), weight_decay=0.0)
    p = _nest({"w": np.zeros((3, 3), np.float32)})
    g = _nest({"w": np.full((3, 3), 0.3, np.float32)})
    new = opt.apply_gradients(g, p)
    np.testing.assert_allclose(np.array(new["w"]), -1e-2, rtol=1e-4)


def test_clip_matches_torch_clip_grad_norm():
    for scale, max_norm in ((10.0, 1.0), (0.01, 1.0), (3.0, 0.5)):
        g = {k: v * scale for k, v in _params(3).items()}
        clipped, norm = clip_by_global_norm(_nest(g), max_norm)
        ts = [torch.nn.Parameter(torch.zeros(v.shape)) for v in g.values()]
        for t, v in zip(ts, g.values()):
            t.grad = torch.tensor(v)
        tnorm = torch.nn.utils.clip_grad_norm_(ts, max_norm)
        assert math.isclose(norm.item(), tnorm.item(), rel_tol=1e-5)
        from mlx.utils import tree_flatten

        for (k, c), t in zip(tree_flatten(clipped), ts):
            np.testing.assert_allclose(np.array(c), t.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_global_norm_and_no_clip():
    g = _nest({"a": np.array([3.0, 4.0], np.float32)})
    assert global_norm(g).item() == pytest.approx(5.0)
    same, n = clip_by_global_norm(g, 0.0)
    assert np.array_equal(np.array(same["a"]), [3.0, 4.0]) and n.item() == pytest.approx(5.0)


def test_state_roundtrip_and_mismatch():
    opt = AdamW(1e-3)
    params = _nest(_params())
    opt.apply_gradients(_nest(_params(1)), params)
    flat = state_to_flat(opt)
    assert {"step", "learning_rate", "wte.weight.m", "wte.weight.v"} <= set(flat)
    opt2 = AdamW(1e-3)
    state_from_flat(opt2, flat, params)
    assert int(opt2.state["step"].item()) == 1
    from reference.errors import InputError

    with pytest.raises(InputError, match="optimizer state does not match"):
        state_from_flat(AdamW(1e-3), {k: v for k, v in flat.items() if not k.startswith("wte")}, params)


def test_schedule_shape():
    s = Schedule(lr=1.0, min_lr=0.1, warmup=4, decay_steps=20)
    lrs = [lr_at(s, i) for i in range(25)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert lrs[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[4:21], lrs[5:21]))
    assert lrs[20] == pytest.approx(0.1) and lrs[24] == 0.1
    assert lrs[12] == pytest.approx(0.1 + 0.5 * 0.9)  # half-way through the cosine


@pytest.mark.parametrize("s", [Schedule(3e-4, 3e-5, 10, 100), Schedule(1e-3, 0.0, 0, 50), Schedule(1e-3, 1e-4, 5, 5)])
def test_mlx_schedule_equals_python_schedule(s):
    f = mlx_schedule(s)
    for step in range(0, s.decay_steps + 10):
        assert f(mx.array(step, mx.uint64)).item() == pytest.approx(lr_at(s, step), rel=1e-5, abs=1e-9)
