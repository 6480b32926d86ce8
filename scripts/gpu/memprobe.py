"""Where the MLX training step's peak memory goes: one configuration, several partial steps, each measured
in the same process as peak bytes above what was live before it (the fp32 master weights, plus the optimizer
state once it exists). Prints one JSON line per stage.

    python3 scripts/gpu/memprobe.py tiny 16 1024          (bf16 compute, fp32 masters, dropout as the preset)

Stages: forward of the chunked loss (what training runs) compiled and eager; forward of the whole-logits loss
(what scripts/gpu/ablate.py's `fwd` variant ran); forward + backward compiled and eager, with and without
dropout, with and without checkpointing; the whole optimizer step."""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import mlx.core as mx  # noqa: E402

from harness.perf.bench import BenchConfig, _random_batch, model_config  # noqa: E402
from reference.losses import lm_loss  # noqa: E402
from reference.model import build_model  # noqa: E402
from reference.train import TrainConfig, cast_floating, make_loss_and_grad, make_optimizer, make_train_step  # noqa: E402

GiB = 2 ** 30


def measure(name, fn, args, compiled, state, compile_it=True):
    """Peak bytes of one evaluation of fn(*args) (after a warm-up one) above what was live before it.
    compile_it=False: fn is already compiled (`compiled` then only labels the row)."""
    f = mx.compile(fn, inputs=state, outputs=state) if compiled and compile_it else fn
    mx.eval(f(*args), state)  # compile / warm up
    mx.synchronize()
    mx.clear_cache()
    base = mx.get_active_memory()
    mx.reset_peak_memory()
    mx.eval(f(*args), state)
    mx.synchronize()
    row = {"stage": name, "compiled": compiled, "live_before_gib": round(base / GiB, 3),
           "peak_gib": round(mx.get_peak_memory() / GiB, 3),
           "peak_above_live_gib": round((mx.get_peak_memory() - base) / GiB, 3)}
    print(json.dumps(row), flush=True)
    return row


def main():
    preset, B, T = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    dtype = sys.argv[4] if len(sys.argv) > 4 else "bfloat16"
    bc = BenchConfig(preset=preset, batch=B, seq=T, dtype=dtype)
    cfg = model_config(bc)
    xs, ys = _random_batch(cfg, bc)
    x, y = mx.array(xs), mx.array(ys)
    compute = mx.bfloat16 if dtype == "bfloat16" else mx.float32
    print(json.dumps({"preset": preset, "batch": B, "seq": T, "dtype": dtype, "dropout": cfg.dropout,
                      "device": str(mx.default_device())}), flush=True)
    for i, dropout in enumerate((cfg.dropout, 0.0) if cfg.dropout else (0.0,)):
        model = build_model(cfg.with_(dropout=dropout))
        model.train()
        state = [model.state, mx.random.state]
        sfx = " nodrop" if i else ""

        def fwd(a, b, chunk=4096):
            master = model.trainable_parameters()
            model.update(cast_floating(master, compute))
            loss = lm_loss(model, a, b, chunk)
            model.update(master)
            return loss

        if i == 0:
            measure("forward (chunked loss)", fwd, (x, y), True, state)
            measure("forward (chunked loss)", fwd, (x, y), False, state)
            measure("forward (whole logits)", lambda a, b: fwd(a, b, None), (x, y), True, state)
        g = make_loss_and_grad(model, dtype, 4096)
        measure("forward+backward" + sfx, g, (x, y), True, state)
        if i == 0:
            measure("forward+backward", g, (x, y), False, state)
            model.checkpoint_blocks = True
            measure("forward+backward ckpt", g, (x, y), True, state)
            model.checkpoint_blocks = False
            tc = TrainConfig(steps=10, batch_size=B, seq_len=T, dtype=dtype)
            opt = make_optimizer(tc)
            step = make_train_step(model, opt, tc)
            # the step compiles itself; its first call also creates the optimizer state
            measure("whole step", lambda a, b: step([(a, b)]), (x, y), True, step.state, compile_it=False)
        del model, state
        mx.synchronize()
        mx.clear_cache()


if __name__ == "__main__":
    main()
