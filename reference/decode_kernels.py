"""Fused CUDA kernels for batched decoding over a SharedPrefixCache (n rows of one prompt, the pass@k case).

Written out in MLX operations, one layer's attention for one new token of n rows is ~20 kernels (scaled query,
transposes, three score products, three masks, concatenation, softmax, three value products, adds) plus two
slice updates of the per-call buffers, and the end of every compiled call copies each layer's whole generated
cache through MLX's slice update (MLX copies an array a slice update writes while a queued kernel still reads
it; 816 us per layer at medium n = 100 on an H200, results/gpu/NOTES.md session 5). Per step that is ~600
operations of MLX's per-operation host cost on medium. Here (mx.fast.cuda_kernel):

- `recent_write`: the new position's key and value, read straight from the qkv projection's output, written into
  the per-call buffers (one kernel for both; the buffers are small: n x heads x steps x head_dim).
- `attention`: one thread block per (row, head) computes the scores over the shared prompt positions, the row's
  generated positions and its per-call positions (only the written ones: no masks), the softmax in fp32 and the
  weighted sum of the values, and writes the (n, d_model) input of the output projection.
- `flush`: the per-call buffers written into the large generated-position buffers as one copy kernel (every
  element read and written once) instead of MLX's slice update.

The arithmetic is the written-out form's in fp32 (scores, softmax and sums accumulate in fp32; the written-out
form rounds scores and probabilities to the compute dtype), so in bf16 the two agree to rounding, not bitwise.
Used when MLX runs on a CUDA GPU and HARNESS_DECODE_KERNELS is not "0"; elsewhere the written-out form runs.
"""
from __future__ import annotations

import functools
import os

import mlx.core as mx

THREADS = 128  # threads per (row, head) block of the attention kernel: 4 warps

_RECENT_WRITE = """
    uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (uint32_t)N) return;
    const int a = at[0];
    const uint32_t bh = i / (uint32_t)(D * R);
    const int b = bh / H, h = bh % H;
    const size_t row = (size_t)b * 3 * C;
    const int r = (i / D) % R, d = i % D;           // keys (b, h, r, d)
    rk_out[i] = r == a ? static_cast<T>(static_cast<float>(qkv[row + C + h * D + d])) : rk[i];
    const int r2 = i % R, d2 = (i / R) % D;         // values, transposed (b, h, d, r)
    rv_out[i] = r2 == a ? static_cast<T>(static_cast<float>(qkv[row + 2 * C + h * D + d2])) : rv[i];
"""

_FLUSH = """
    uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (uint32_t)N) return;
    const int b0 = base[0];
    const size_t bh = i / (uint32_t)(D * G);
    const int g = (i / D) % G, d = i % D;           // keys (b, h, g, d)
    const int r = g - b0;
    gk_out[i] = (r >= 0 && r < R) ? rk[(bh * R + r) * D + d] : gk[i];
    const int g2 = i % G, d2 = (i / G) % D;         // values, transposed (b, h, d, g)
    const int r2 = g2 - b0;
    gv_out[i] = (r2 >= 0 && r2 < R) ? rv[(bh * D + d2) * R + r2] : gv[i];
"""

_ATTENTION = """
    constexpr int WARPS = NT / 32;
    __shared__ float qs[D];
    __shared__ float s[MAXL];
    __shared__ float red[WARPS];
    const int bh = blockIdx.x, b = bh / H, h = bh % H;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int P = plen[0], G0 = base[0], NR = nrec[0];
    const int L = P + G0 + NR;
    const float scale = rsqrtf((float)D);
    const TQ* q = qkv + (size_t)b * 3 * C + h * D;
    for (int d = tid; d < D; d += NT) qs[d] = static_cast<float>(q[d]) * scale;
    __syncthreads();
    const T* pkh = pk + (size_t)h * PC * D;
    const T* gkh = gk + (size_t)bh * GC * D;
    const T* rkh = rk + (size_t)bh * R * D;
    for (int j = warp; j < L; j += WARPS) {         // one warp per position, lanes over head_dim
        const T* k = j < P ? pkh + (size_t)j * D : (j < P + G0 ? gkh + (size_t)(j - P) * D : rkh + (size_t)(j - P - G0) * D);
        float acc = 0.f;
        for (int d = lane; d < D; d += 32) acc += qs[d] * static_cast<float>(k[d]);
        for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
        if (lane == 0) s[j] = acc;
    }
    __syncthreads();
    float m = -3.0e38f;
    for (int j = tid; j < L; j += NT) m = fmaxf(m, s[j]);
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    if (lane == 0) red[warp] = m;
    __syncthreads();
    m = red[0];
    for (int w = 1; w < WARPS; ++w) m = fmaxf(m, red[w]);
    __syncthreads();
    float sum = 0.f;
    for (int j = tid; j < L; j += NT) { float e = __expf(s[j] - m); s[j] = e; sum += e; }
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane == 0) red[warp] = sum;
    __syncthreads();
    sum = 0.f;
    for (int w = 0; w < WARPS; ++w) sum += red[w];
    const float inv = 1.f / sum;
    const T* pvh = pv + (size_t)h * D * PC;
    const T* gvh = gv + (size_t)bh * D * GC;
    const T* rvh = rv + (size_t)bh * D * R;
    for (int d = warp; d < D; d += WARPS) {         // one warp per output element, lanes over positions
        float acc = 0.f;
        const T* v = pvh + (size_t)d * PC;
        for (int j = lane; j < P; j += 32) acc += s[j] * static_cast<float>(v[j]);
        v = gvh + (size_t)d * GC;
        for (int j = lane; j < G0; j += 32) acc += s[P + j] * static_cast<float>(v[j]);
        v = rvh + (size_t)d * R;
        for (int j = lane; j < NR; j += 32) acc += s[P + G0 + j] * static_cast<float>(v[j]);
        for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
        if (lane == 0) y[(size_t)b * C + h * D + d] = static_cast<TQ>(acc * inv);
    }
"""

SOURCES = {"recent_write": _RECENT_WRITE, "flush": _FLUSH, "attention": _ATTENTION}


def enabled() -> bool:
    """Whether batched decoding uses these kernels: MLX's default device is a CUDA GPU and
    HARNESS_DECODE_KERNELS is not "0" (the written-out form runs otherwise, e.g. for A/B runs)."""
    if os.environ.get("HARNESS_DECODE_KERNELS", "1") == "0":
        return False
    try:
        return mx.default_device() == mx.gpu and mx.cuda.is_available()
    except AttributeError:  # an MLX without the CUDA module
        return False


SHARED_BYTES = 48_000  # static shared memory a thread block may use without opting in


def fits(keys_shape, prefix_cap: int, recent: int) -> bool:
    """Whether caches of these shapes fit the kernels: the attention kernel keeps one fp32 score per position
    (prompt buffer + generated buffer + per-call buffer) in static shared memory, and the flush indexes with
    31 bits. Larger caches take the written-out form."""
    B, H, G, D = keys_shape
    return (prefix_cap + G + recent + D + THREADS // 32) * 4 <= SHARED_BYTES and B * H * G * D < 1 << 31


@functools.lru_cache(maxsize=None)
def _kernel(name: str):
    io = {"recent_write": (["rk", "rv", "qkv", "at"], ["rk_out", "rv_out"]),
          "flush": (["gk", "gv", "rk", "rv", "base"], ["gk_out", "gv_out"]),
          "attention": (["qkv", "pk", "pv", "gk", "gv", "rk", "rv", "plen", "base", "nrec"], ["y"])}[name]
    return mx.fast.cuda_kernel(name=f"reference_decode_{name}", input_names=io[0], output_names=io[1],
                               source=SOURCES[name])


def _scalar(x: mx.array) -> mx.array:
    return mx.reshape(x, (1,)).astype(mx.int32)


def _grid(n: int, block: int = 256):
    return dict(grid=(-(-n // block) * block, 1, 1), threadgroup=(block, 1, 1))


def recent_write(rk: mx.array, rv: mx.array, qkv: mx.array, at: mx.array):
    """rk (B, H, R, D) and rv (B, H, D, R) with position `at` set to the key and value of qkv (B, 3 d_model)."""
    B, H, R, D = rk.shape
    n = rk.size
    return _kernel("recent_write")(
        inputs=[rk, rv.astype(rk.dtype), qkv, _scalar(at)],
        template=[("T", rk.dtype), ("N", n), ("H", H), ("D", D), ("R", R), ("C", H * D)],
        output_shapes=[rk.shape, rv.shape], output_dtypes=[rk.dtype, rk.dtype], **_grid(n))


def flush(gk: mx.array, gv: mx.array, rk: mx.array, rv: mx.array, base: mx.array):
    """gk (B, H, G, D) and gv (B, H, D, G) with positions base .. base + R taken from rk (B, H, R, D) and
    rv (B, H, D, R)."""
    B, H, G, D = gk.shape
    R = rk.shape[2]
    n = gk.size
    return _kernel("flush")(
        inputs=[gk, gv, rk.astype(gk.dtype), rv.astype(gk.dtype), _scalar(base)],
        template=[("T", gk.dtype), ("N", n), ("D", D), ("G", G), ("R", R)],
        output_shapes=[gk.shape, gv.shape], output_dtypes=[gk.dtype, gk.dtype], **_grid(n))


def attention(qkv: mx.array, pk, pv, plen, gk, gv, base, rk, rv, nrec) -> mx.array:
    """Attention of each row's query (in qkv (B, 3 d_model)) over the shared prompt (pk (1, H, Pc, D),
    pv (1, H, D, Pc), plen of Pc valid), the row's generated positions (gk (B, H, Gc, D), gv (B, H, D, Gc),
    base valid) and its per-call positions (rk (B, H, R, D), rv (B, H, D, R), nrec valid) -> (B, d_model)."""
    B, H, Gc, D = gk.shape
    Pc, R = pk.shape[2], rk.shape[2]
    dt = gk.dtype
    return _kernel("attention")(
        inputs=[qkv, pk.astype(dt), pv.astype(dt), gk, gv, rk.astype(dt), rv.astype(dt),
                _scalar(plen), _scalar(base), _scalar(nrec)],
        template=[("T", dt), ("TQ", qkv.dtype), ("NT", THREADS), ("H", H), ("D", D), ("C", H * D), ("PC", Pc),
                  ("GC", Gc), ("R", R), ("MAXL", Pc + Gc + R)],
        grid=(B * H * THREADS, 1, 1), threadgroup=(THREADS, 1, 1),
        output_shapes=[(B, H * D)], output_dtypes=[qkv.dtype])[0]
