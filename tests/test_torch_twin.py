"""reference.torch_twin: same names and shapes as the MLX GPT, same logits, same greedy tokens.

Tolerance: fp32 logits agree to atol 1e-4 + rtol 1e-4 (observed max |diff| ~5e-6 on logits of
magnitude ~10 for these tiny models; the differences are summation order in matmul and softmax)."""
from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten

from reference.config import ModelConfig
from reference.errors import InputError
from reference.generate import generate_tokens
from reference.model import GPT, randomize

torch = pytest.importorskip("torch")
from reference.torch_twin import TorchGPT, from_mlx, load_mlx_weights, make_cache, torch_generate  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.usefixtures("one_torch_thread")]
ATOL = RTOL = 1e-4



def random_model(vocab=80, d=32, layers=2, heads=4, ctx=64, seed=0, scale=0.4, tie=True) -> GPT:
    cfg = ModelConfig(vocab_size=vocab, d_model=d, n_layers=layers, n_heads=heads, d_ff=3 * d, max_seq_len=ctx,
                      dropout=0.2, tie_embeddings=tie)
    return randomize(GPT(cfg), seed, scale)


def logits_both(m: GPT, ids: np.ndarray):
    t = from_mlx(m)
    with torch.no_grad():
        return np.array(m(mx.array(ids))), t(torch.tensor(ids, dtype=torch.long)).numpy()


@pytest.mark.parametrize("tie", [True, False])
def test_parameter_names_and_shapes_match(tie):
    m = random_model(tie=tie)
    mlx_shapes = {k: tuple(v.shape) for k, v in tree_flatten(m.parameters())}
    torch_shapes = {k: tuple(v.shape) for k, v in TorchGPT(m.config).named_parameters()}
    assert torch_shapes == mlx_shapes


@pytest.mark.parametrize("tie", [True, False])
def test_logits_agree(tie):
    m = random_model(tie=tie, seed=3)
    ids = np.random.default_rng(0).integers(0, 80, (3, 64))
    a, b = logits_both(m, ids)
    assert np.abs(a).max() > 1.0, "logits should not be near zero, or the tolerance means nothing"
    np.testing.assert_allclose(b, a, atol=ATOL, rtol=RTOL)


def test_eval_mode_disables_dropout_in_both():
    m = random_model(seed=4)  # dropout 0.2 in the config
    ids = np.random.default_rng(1).integers(0, 80, (2, 16))
    t = from_mlx(m)
    with torch.no_grad():
        np.testing.assert_array_equal(t(torch.tensor(ids)).numpy(), t(torch.tensor(ids)).numpy())
    t.train()
    with torch.no_grad():
        assert not np.allclose(t(torch.tensor(ids)).numpy(), t(torch.tensor(ids)).numpy())


def test_torch_kv_cache_matches_full_forward():
    """Prefill, single-token steps and a multi-token step after cached keys (which needs the causal
    mask aligned bottom-right, unlike torch's is_causal)."""
    m = random_model(seed=5)
    t = from_mlx(m)
    ids = torch.tensor(np.random.default_rng(2).integers(0, 80, (2, 40)))
    with torch.no_grad():
        full = t(ids)
        cache = make_cache(t)
        parts, pos = [], 0
        for step in (9, 1, 1, 6, 1, 13, 9):
            parts.append(t(ids[:, pos:pos + step], cache))
            pos += step
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)


def test_greedy_generation_matches_mlx():
    m = random_model(seed=6, ctx=64)
    t = from_mlx(m)
    a = generate_tokens(m, [1, 2, 3], n=2, max_tokens=40)
    b = torch_generate(t, [1, 2, 3], 40, n=2)
    c = torch_generate(t, [1, 2, 3], 40, use_cache=False)
    assert a.tokens == b.tokens and b.tokens[0] == c.tokens[0]
    assert b.decode_tokens_per_s > 0 and b.first_token_s > 0
    stop = a.tokens[0][5]
    assert torch_generate(t, [1, 2, 3], 40, stop_ids=[stop]).tokens[0] == a.tokens[0][:a.tokens[0].index(stop)]
    short = torch_generate(t, [1] * 60, 40)
    assert len(short.tokens[0]) == 4 and short.hit_context_limit


def test_load_rejects_mismatched_weights():
    m = random_model()
    w = {k: np.array(v) for k, v in tree_flatten(m.parameters())}
    t = TorchGPT(m.config)
    with pytest.raises(InputError, match="missing"):
        load_mlx_weights(t, {k: v for k, v in w.items() if k != "ln_f.bias"})
    bad = dict(w)
    bad["wpe.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(InputError, match="wpe.weight"):
        load_mlx_weights(t, bad)
    with pytest.raises(InputError, match="unexpected"):
        load_mlx_weights(t, {**w, "lm_head.weight": np.zeros((80, 32), np.float32)})


def test_layernorm_eps_and_gelu_match_mlx():
    import mlx.nn as nn

    assert nn.LayerNorm(8).eps == TorchGPT(random_model().config).ln_f.eps == 1e-5
    x = np.linspace(-6, 6, 101, dtype=np.float32)
    np.testing.assert_allclose(torch.nn.functional.gelu(torch.tensor(x)).numpy(), np.array(nn.gelu(mx.array(x))),
                               atol=1e-6)


def test_static_cache_prefill_and_steps_match_full_forward():
    from reference.torch_twin import TorchStaticCache

    m = random_model(seed=8)
    t = from_mlx(m)
    ids = torch.tensor(np.random.default_rng(3).integers(0, 80, (2, 30)))
    with torch.no_grad():
        full = t(ids)
        caches = [TorchStaticCache(2, m.config, 48, torch.float32, "cpu") for _ in t.blocks]
        parts, pos = [], 0
        for step in (7, 1, 1, 12, 9):
            parts.append(t(ids[:, pos:pos + step], caches, torch.arange(pos, pos + step)))
            pos += step
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)


def test_twin_gradient_checkpointing_gives_the_same_gradients():
    m = random_model(seed=9)
    m.update(randomize(GPT(m.config.with_(dropout=0.0)), 9, 0.4).parameters())
    t = from_mlx(m)
    t.config = m.config
    for mod in t.modules():
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.0
    ids = torch.tensor(np.random.default_rng(4).integers(0, 80, (2, 24)))

    def grads(ckpt):
        t.zero_grad(set_to_none=True)
        t.train()
        t.checkpoint_blocks = ckpt
        t(ids).square().mean().backward()
        return {k: p.grad.clone() for k, p in t.named_parameters()}

    a, b = grads(False), grads(True)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5)
