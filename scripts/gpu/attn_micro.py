"""Where a batched decode step's attention time goes: one layer's attention for n rows at the shapes of a
256-token prompt + 256 new tokens (bf16), each form compiled (mx.compile, fixed shapes) and timed over 50
evaluations after 5 warm-up ones; prints one JSON line per (preset, n, form) with microseconds per call.

    python3 scripts/gpu/attn_micro.py [--presets medium tiny] [--n 20 100]

Forms: static-repeat (reference.kvcache.static_attention over a per-row cache of 512 positions, the layout
before the prompt was shared), shared-matmul / shared-mulsum / shared-mulsum16 (shared_prefix_attention with
BATCH_ATTENTION set), and the pieces of shared-matmul: prefix-scores (cuBLAS, M = n per head), row-scores
(MLX's batched gemv, n x heads batches), row-values (gemv over the transposed values), cache-update
(the two slice_updates of a step); on CUDA also fused-kernels (reference.decode_kernels' recent_write +
attention of one layer's step) and flush-kernel (its copy of a call's positions into the large buffers)."""
from __future__ import annotations

import argparse
import json
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", nargs="+", default=["medium", "tiny"])
    ap.add_argument("--n", type=int, nargs="+", default=[20, 100])
    a = ap.parse_args()
    import mlx.core as mx

    import reference.kvcache as M
    from reference.config import get_config

    def timed(f, *args):
        g = mx.compile(f)
        for _ in range(5):
            mx.eval(g(*args))
        t0 = time.perf_counter()
        for _ in range(50):
            mx.eval(g(*args))
        return (time.perf_counter() - t0) / 50 * 1e6

    dt = mx.bfloat16
    for preset in a.presets:
        cfg = get_config(preset)
        H, D = cfg.n_heads, cfg.head_dim
        for n in a.n:
            r = lambda *s: mx.random.normal(s).astype(dt)  # noqa: E731
            q = r(n, H, 1, D)
            pk, pv = r(1, H, 256, D), r(1, H, D, 256)
            gk, gv = r(n, H, 320, D), r(n, H, D, 320)
            fk, fv = r(n, H, 512, D), r(n, H, D, 512)
            off, plen = mx.array(100, mx.int32), mx.array(256, mx.int32)
            mx.eval(q, pk, pv, gk, gv, fk, fv)
            gmask = mx.arange(320)[None, :] <= off
            fmask = mx.arange(512)[None, :] <= off + 256
            scale = 1 / D ** 0.5
            rows = {}
            rows["static-repeat"] = timed(lambda q, k, v: M.static_attention(q, k, v, fmask, scale), q, fk, fv)
            for form in ("matmul", "mulsum", "mulsum16"):
                M.BATCH_ATTENTION = form

                def f(q, gk, gv, pk, pv):
                    c = M.SharedPrefixCache(gk, gv, off, pk, pv, plen)
                    return M.shared_prefix_attention(q, c, gmask, scale)
                rows[f"shared-{form}"] = timed(f, q, gk, gv, pk, pv)
            qh = q.transpose(1, 0, 2, 3).reshape(H, n, D)
            mx.eval(qh)
            rows["prefix-scores"] = timed(lambda qh, pk: qh @ pk[0].swapaxes(-1, -2), qh, pk)
            rows["row-scores"] = timed(lambda q, gk: q @ gk.swapaxes(-1, -2), q, gk)
            p = r(n, H, 1, 320)
            mx.eval(p)
            rows["row-values"] = timed(lambda gv, p: gv @ p.swapaxes(-1, -2), gv, p)
            kn = r(n, H, 1, D)
            mx.eval(kn)
            rows["cache-update"] = timed(lambda gk, gv, kn: (
                mx.slice_update(gk, kn, mx.reshape(off, (1,)), axes=(2,)),
                mx.slice_update(gv, kn.swapaxes(2, 3), mx.reshape(off, (1,)), axes=(3,))), gk, gv, kn)
            from reference import decode_kernels as K
            if K.enabled():  # the fused kernels of one layer's step, and the flush of a call
                qkv = r(n, 3 * H * D)
                rk, rv = r(n, H, 8, D), r(n, H, D, 8)
                at, base = mx.array(3, mx.int32), mx.array(96, mx.int32)
                mx.eval(qkv, rk, rv)

                def fused(qkv, gk, gv, pk, pv, rk, rv):
                    rk, rv = K.recent_write(rk, rv, qkv, at)
                    return K.attention(qkv, pk, pv, plen, gk, gv, base, rk, rv, at + 1)
                rows["fused-kernels"] = timed(fused, qkv, gk, gv, pk, pv, rk, rv)
                rows["flush-kernel"] = timed(lambda gk, gv, rk, rv: K.flush(gk, gv, rk, rv, base), gk, gv, rk, rv)
            for form, us in rows.items():
                print(json.dumps({"preset": preset, "n": n, "form": form, "us_per_call": round(us, 1)}), flush=True)


if __name__ == "__main__":
    main()
