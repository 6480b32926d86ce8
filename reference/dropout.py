"""Dropout whose mask costs 16 random bits per element and is never stored: the backward pass draws the
same mask again from the same key.

Two bit sources (`MASKS`; `dropout(..., mask=)`, default `DEFAULT_MASK` = "threefry"):

- "threefry": MLX's generator, as described next. It runs as its own kernels and writes its bits to memory.
- "hash": each element's bits are a keyed hash of its flat index (two rounds of MurmurHash3's 32-bit
  finaliser around the key's words), written with elementwise integer ops on broadcast aranges, so that
  mx.compile can fuse the mask into the kernel that applies it (on CPU it does: one kernel, no mask in
  memory). Predicted to remove dropout's cost on a GPU; measured slower there instead (H100, MLX 0.32.4,
  results/gpu/NOTES.md, the hash-mask rows: medium 8 x 2048 121.0K vs 134.5K tok/s and +0.7 GiB, tiny 16 x 1024
  359.8K vs 416.8K and +1.2 GiB), so it is not the default. On CUDA the same bits now come from one kernel
  (`hash_dropout_cuda`, mx.fast.cuda_kernel, the thread index as the counter), verified on an H100 to draw
  exactly these bits; its speed is not measured yet. The counter is 32 bits: tensors of 2**32 elements or
  more use "threefry".

mlx.nn.Dropout draws a 32-bit word per element (`mx.random.bernoulli`), and the compiled training step keeps
those words (or the mask) alive from the forward to the backward pass: on the medium preset at 8 x 2048 that is
73 masks of 16.7M elements per step. Here a mask comes from a 2-word key:

- `keep_mask(key, shape, p)` reads threefry bits through `mx.random.split(key, n)` (an (n, 2) uint32 array
  of counter-mode bits, the only bit generator MLX's Python API exposes), views them as uint16 and keeps an
  element when its 16 bits are >= round(p * 65536). The drop rate is therefore p rounded to a multiple of
  1/65536 (0.1 -> 0.100006); kept elements are scaled by 1 / (1 - that rate), so E[dropout(x)] = x exactly
  (in bf16 the product is formed in fp32 and rounded once; a bf16 scale would be 0.16% short).
- `dropout(x, key, p)` is an mx.custom_function whose gradient rebuilds the mask from the key (the key's
  use in the backward pass is tied to the incoming cotangent with mx.depends, so the bits are drawn when the
  gradient arrives, not scheduled early and held, and mx.compile cannot merge them with the forward's).

The key is an ordinary input, which also makes recomputation exact: a checkpointed block that is handed its
key draws the same masks when the backward pass re-runs it (in training reference.model passes one key to each
block, checkpointed or not; drawing from the global generator inside the block gave the recomputation new masks
and wrong gradients).
"""
from __future__ import annotations

import functools
import math

import mlx.core as mx
import mlx.nn as nn

BITS = 16
LEVELS = 1 << BITS


def threshold(p: float) -> int:
    """Elements whose 16 random bits are below this are dropped."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    return min(LEVELS, round(p * LEVELS))


def effective_rate(p: float) -> float:
    """The drop probability actually applied: p rounded to a multiple of 2**-16."""
    return threshold(p) / LEVELS


def new_key() -> mx.array:
    """A fresh 2-word key from MLX's global generator (so mx.random.seed and a compiled step's captured
    mx.random.state govern it like any other random draw)."""
    return mx.random.randint(0, 1 << 31, (2,), dtype=mx.uint32)


def keep_mask(key: mx.array, shape, p: float) -> mx.array:
    """Boolean mask of `shape`: True where an element is kept."""
    n = math.prod(shape)
    rows = max(1, -(-n // 4))  # each row of split(key, rows) is 2 uint32 words = 4 uint16 values
    bits = mx.view(mx.random.split(key, rows), mx.uint16).reshape(-1)
    if bits.size != n:
        bits = bits[:n]
    return bits.reshape(shape) >= threshold(p)


MASKS = ("hash", "threefry")
DEFAULT_MASK = "threefry"
_U32 = 1 << 32


def _u32(c: int) -> mx.array:
    return mx.array(c, mx.uint32)


def _fmix32(h: mx.array) -> mx.array:
    """MurmurHash3's 32-bit finaliser: a bijection of uint32 with full avalanche."""
    h = h ^ (h >> 16)
    h = h * _u32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * _u32(0xC2B2AE35)
    return h ^ (h >> 16)


def flat_index(shape) -> mx.array:
    """uint32 array of `shape` holding each element's row-major flat index, as a sum of one broadcast
    arange per axis (elementwise, so a compiled consumer computes it in registers)."""
    idx, stride, nd = None, 1, len(shape)
    for axis in reversed(range(nd)):
        a = mx.arange(shape[axis], dtype=mx.uint32)
        if stride != 1:
            a = a * _u32(stride)
        a = a.reshape([shape[axis] if i == axis else 1 for i in range(nd)])
        idx = a if idx is None else idx + a
        stride *= shape[axis]
    return mx.broadcast_to(idx if idx is not None else mx.array(0, mx.uint32), shape)


def hash_bits(key: mx.array, shape) -> mx.array:
    """16 pseudo-random bits (uint32 in [0, 65536)) per element of `shape`, a function of the 2-word key and
    the element's flat index."""
    k = key.astype(mx.uint32)
    h = _fmix32(flat_index(shape) * _u32(0x9E3779B1) + k[0])
    return _fmix32(h ^ k[1]) >> 16


def keep_mask_hash(key: mx.array, shape, p: float) -> mx.array:
    """Boolean mask of `shape` from `hash_bits`: True where an element is kept."""
    if math.prod(shape) >= _U32:
        raise ValueError(f"the hash mask's counter is 32 bits; {shape} has {math.prod(shape)} elements")
    return hash_bits(key, shape) >= threshold(p)


def _checked(mask: str | None) -> str:
    mask = mask or DEFAULT_MASK
    if mask not in MASKS:
        raise ValueError(f"dropout mask {mask!r}: choose one of {', '.join(MASKS)}")
    return mask


def _uses_threefry(mask: str, n: int) -> bool:
    """Whether a tensor of n elements gets threefry bits under `mask` (the hash's counter is 32 bits)."""
    return mask == "threefry" or n >= _U32


def keep(key: mx.array, shape, p: float, mask: str | None = None) -> mx.array:
    """The keep mask `dropout(x, key, p, mask)` applies to an x of `shape`."""
    if _uses_threefry(_checked(mask), math.prod(shape)):
        return keep_mask(key, shape, p)
    return keep_mask_hash(key, shape, p)


# The hash mask as one CUDA kernel: the thread's flat index is the counter, so no index arrays and no
# broadcasting; the same bits as keep_mask_hash (tests/test_dropout.py checks both on a GPU).
_CUDA_SOURCE = """
    uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (uint32_t)N) return;
    uint32_t h = i * 0x9E3779B1u + key[0];
    h ^= h >> 16; h *= 0x85EBCA6Bu; h ^= h >> 13; h *= 0xC2B2AE35u; h ^= h >> 16;
    h ^= key[1];
    h ^= h >> 16; h *= 0x85EBCA6Bu; h ^= h >> 13; h *= 0xC2B2AE35u; h ^= h >> 16;
    float v = static_cast<float>(x[i]);
    y[i] = static_cast<T>((h >> 16) >= (uint32_t)THRESH ? v * (65536.0f / (65536.0f - (float)THRESH)) : 0.0f);
"""


@functools.lru_cache(maxsize=None)
def _cuda_kernel():
    return mx.fast.cuda_kernel(name="reference_hash_dropout", input_names=["x", "key"], output_names=["y"],
                               source=_CUDA_SOURCE)


def use_cuda_kernel() -> bool:
    """The hash mask runs as its CUDA kernel when MLX's default device is a CUDA GPU."""
    return mx.default_device() == mx.gpu and mx.cuda.is_available()


def hash_dropout_cuda(x: mx.array, key: mx.array, p: float) -> mx.array:
    """dropout(x, key, p, "hash") as one CUDA kernel (needs a CUDA GPU; x is made row-contiguous first)."""
    if x.size >= (1 << 31):
        raise ValueError(f"the CUDA dropout kernel indexes with 31 bits; {x.shape} is too large")
    n, block = x.size, 256
    return _cuda_kernel()(inputs=[x, key.astype(mx.uint32)],
                          template=[("T", x.dtype), ("N", n), ("THRESH", threshold(p))],
                          grid=(-(-n // block) * block, 1, 1), threadgroup=(block, 1, 1),
                          output_shapes=[x.shape], output_dtypes=[x.dtype])[0]


@functools.lru_cache(maxsize=None)
def _dropout_fn(p: float, mask: str = DEFAULT_MASK):
    mask = _checked(mask)
    t = threshold(p)
    scale = LEVELS / (LEVELS - t) if t < LEVELS else 0.0

    def scaled(x):  # in fp32: a bf16 x times a Python scale would round the scale to bf16 (1.1111 -> 1.1094)
        return (x.astype(mx.float32) * scale).astype(x.dtype) if x.dtype != mx.float32 else x * scale

    def threefry(x, key):
        return mx.where(keep_mask(key, x.shape, p), scaled(x), mx.zeros((), x.dtype))

    # compiled on its own too, so that eager callers also get one fused kernel (inside a compiled step it is
    # inlined); the shape comes from x, which is part of the compiled function's cache key
    hashed = mx.compile(lambda x, key: mx.where(keep_mask_hash(key, x.shape, p), scaled(x), mx.zeros((), x.dtype)))

    def apply(x, key):
        if _uses_threefry(mask, x.size):
            return threefry(x, key)
        if use_cuda_kernel() and x.size < (1 << 31):
            return hash_dropout_cuda(x, key, p)
        return hashed(x, key)

    @mx.custom_function
    def f(x, key):
        return apply(x, key)

    @f.vjp
    def f_vjp(primals, cotangent, output):
        x, key = primals
        cot = cotangent[0] if isinstance(cotangent, (list, tuple)) else cotangent
        return apply(cot, mx.depends(key, cot)).astype(x.dtype), mx.zeros_like(key)

    return f


def dropout(x: mx.array, key: mx.array, p: float, mask: str | None = None) -> mx.array:
    """x with each element zeroed with probability effective_rate(p), the rest scaled to keep the mean.
    `mask`: "hash" or "threefry" (default DEFAULT_MASK)."""
    if p == 0.0:
        return x
    return _dropout_fn(float(p), _checked(mask))(x, key)


class Dropout(nn.Module):
    """Drop-in for mlx.nn.Dropout (identity in eval mode or at p = 0); `key` pins the mask."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        threshold(p)
        self.p = float(p)

    def _extra_repr(self) -> str:
        return f"p={self.p}"

    def __call__(self, x: mx.array, key: mx.array | None = None) -> mx.array:
        if not self.training or self.p == 0.0:
            return x
        return dropout(x, new_key() if key is None else key, self.p)
