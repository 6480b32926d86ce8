"""The PyTorch twin (reference/torch_twin.py) computes the MLX model's function: for random shapes and random
weights (biases and LayerNorm parameters included), logits agree within fp32 tolerance, atol = rtol = 1e-4
(summation-order differences; observed ~1e-5 on logits of magnitude ~1-10), with the full forward and with
the twin's own KV cache. This is what makes the twin a fair speed baseline and a training oracle."""
from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference.config import ModelConfig
from reference.model import GPT, randomize

torch = pytest.importorskip("torch")
from reference.torch_twin import from_mlx, make_cache  # noqa: E402

pytestmark = pytest.mark.torch
TOL = dict(atol=1e-4, rtol=1e-4)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models are all dispatch overhead: one thread is as fast, and immune to OpenMP threads spinning
    against other processes on a loaded 2-core machine (seen to slow these tests 100x)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@st.composite
def configs(draw):
    heads = draw(st.sampled_from([1, 2, 4]))
    return ModelConfig(vocab_size=draw(st.integers(8, 300)), d_model=heads * draw(st.sampled_from([8, 16])),
                       n_layers=draw(st.integers(1, 3)), n_heads=heads, d_ff=draw(st.sampled_from([16, 48, 96])),
                       max_seq_len=draw(st.integers(4, 64)), dropout=0.1, tie_embeddings=draw(st.booleans()))


def random_weights(m: GPT, seed: int, scale: float) -> GPT:
    return randomize(m, seed, scale)


@given(cfg=configs(), batch=st.integers(1, 3), seed=st.integers(0, 2**31 - 1), scale=st.sampled_from([0.02, 0.2, 0.5]))
def test_twin_logits_agree(cfg, batch, seed, scale):
    m = random_weights(GPT(cfg), seed, scale)
    ids = np.random.default_rng(seed).integers(0, cfg.vocab_size, (batch, cfg.max_seq_len))
    a = np.array(m(mx.array(ids.astype(np.int32))))
    t = from_mlx(m)
    with torch.no_grad():
        b = t(torch.tensor(ids)).numpy()
        cache = make_cache(t)
        half = cfg.max_seq_len // 2
        inc = torch.cat([t(torch.tensor(ids[:, :half]), cache), t(torch.tensor(ids[:, half:]), cache)], 1).numpy()
    np.testing.assert_allclose(b, a, **TOL)
    np.testing.assert_allclose(inc, a, **TOL)
