"""The training loop: set-up from a data directory (fresh, --init or --resume), steps, periodic validation,
checkpoints, per-step metrics (JSONL), and the faults it survives.

Faults: a non-finite loss or gradient norm stops the run (TrainingDiverged) without saving, so the last
checkpoint is the last good one; SIGINT/SIGTERM finish the current step, save and return with
`interrupted`; a failed save raises reference.checkpoint.CheckpointWriteError and leaves the earlier
checkpoints as they were. HARNESS_FAULT=nan_at:STEP makes the loss of step STEP read as NaN (tests).
"""
from __future__ import annotations

import json
import math
import os
import resource
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten

from . import checkpoint as ck
from . import distributed
from .batches import BatchSampler
from .config import PRESETS, ModelConfig, param_count
from .errors import InputError
from .files import atomic_write_text
from .model import GPT, build_model
from .optim import state_from_flat, state_to_flat
from .packed import load_manifest, open_split
from .schedule import lr_at
from .train import TrainConfig, make_eval_fn, make_optimizer, make_train_step, memory_limit

WARMUP_STEPS = 2  # steps after (re)start excluded from timing: they include compilation


class TrainingDiverged(RuntimeError):
    pass


@dataclass
class TrainResult:
    config: TrainConfig
    model_config: ModelConfig
    out_dir: Path
    world_size: int
    start_step: int
    step: int = 0
    losses: list = field(default_factory=list)  # (step, loss) for steps run in this process
    val: list = field(default_factory=list)  # (step, val_loss)
    step_times: list = field(default_factory=list)  # seconds, steps after the warm-up
    tokens_per_step: int = 0
    tokens_seen: int = 0
    peak_memory_bytes: int = 0
    max_rss_bytes: int = 0
    wall_s: float = 0.0
    checkpoint: str | None = None
    interrupted: bool = False
    notes: list = field(default_factory=list)
    n_params: int = 0


class _Stop:
    """SIGINT/SIGTERM set a flag the loop reads after each step; a second signal interrupts at once."""

    def __init__(self):
        self.flag = False
        self.old = {}

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                self.old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        self.flag = True
        signal.signal(signum, signal.default_int_handler)

    def __exit__(self, *exc):
        for s, h in self.old.items():
            signal.signal(s, h)


def _check_tokenizer(where: str, ck_sha: str | None, data_sha: str, data_dir: Path) -> None:
    if ck_sha != data_sha:
        raise InputError(f"tokenizer mismatch: checkpoint {where} was trained with tokenizer sha256 {ck_sha} "
                         f"but {data_dir} has {data_sha}; use the data directory the checkpoint was trained on")


def _load_model(ckpt: ck.Checkpoint, dropout: float | None) -> GPT:
    try:
        mcfg = ModelConfig.from_dict(ckpt.state["model_config"])
    except (TypeError, ValueError) as e:
        raise InputError(f"{ckpt.path}/state.json has an invalid model_config ({e})") from None
    if dropout is not None:
        mcfg = mcfg.with_(dropout=dropout)
    model = GPT(mcfg)
    w = ckpt.weights()
    ck.check_weights(w, {k: v.shape for k, v in tree_flatten(model.parameters())}, ckpt.path)
    model.load_weights(list(w.items()), strict=True)
    return model


def _prepare_out_dir(out_dir: Path, existing: list, cfg: TrainConfig, init, resume: bool, force: bool, dist) -> None:
    if dist.is_main and out_dir.is_dir():
        remove_stray_temporaries(out_dir)
    if existing and not resume and not force:
        raise InputError(f"{out_dir} already holds checkpoints (newest {existing[-1][1].name}); pass --resume to "
                         f"continue that run or --force to start over")
    if resume and not existing:
        raise InputError(f"--resume: {out_dir} holds no checkpoint to resume; start without --resume")
    if cfg.stage == "finetune" and init is None and not resume:
        raise InputError("stage finetune needs --init CHECKPOINT_DIR (a stage-1 run or checkpoint)")
    if dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        if force and not resume:
            for _, p in existing:
                shutil.rmtree(p, ignore_errors=True)
            for name in ("latest", "metrics.jsonl", "report.json"):
                (out_dir / name).unlink(missing_ok=True)


def remove_stray_temporaries(out_dir: Path) -> None:
    """What a run killed outright (SIGKILL, power loss) left half-written: checkpoint directories being
    saved, `latest`, metrics and report files being replaced. Complete files are never among them."""
    for p in out_dir.glob(".tmp-ckpt-*"):
        shutil.rmtree(p, ignore_errors=True)
    for pattern in (".latest.*", "metrics.jsonl.tmp", ".report.json.*.tmp"):
        for p in out_dir.glob(pattern):
            if p.is_file():
                p.unlink(missing_ok=True)


def resume_checkpoint(out_dir: str | Path, step: int | None = None, *, verify: bool = True) -> ck.Checkpoint:
    """The checkpoint a resume continues from: the newest one, or the one of `step` (--resume-from). When the
    newest cannot be read, the message names the newest intact one and how to continue from it."""
    found = ck.list_checkpoints(out_dir)
    if not found:
        raise InputError(f"--resume: {out_dir} holds no checkpoint to resume; start without --resume")
    if step is not None:
        path = dict(found).get(step)
        if path is None:
            raise InputError(f"--resume-from {step}: {out_dir} has no checkpoint of step {step}; it has steps "
                             f"{', '.join(str(s) for s, _ in found)}")
        return ck.read_checkpoint(path, verify=verify)
    newest = found[-1][1]
    try:
        return ck.read_checkpoint(newest, verify=verify)
    except InputError as e:
        for s, p in reversed(found[:-1]):
            try:
                ck.read_checkpoint(p)
            except InputError:
                continue
            raise InputError(f"--resume: the newest checkpoint {newest} cannot be used ({e}); {p.name} (step {s}) "
                             f"is intact: continue from it with --resume-from {s} (the steps after {s} are "
                             f"trained again and {newest.name} is replaced)") from None
        raise InputError(f"--resume: no checkpoint in {out_dir} is intact (newest: {e}); start the run over with "
                         f"--force") from None


def _drop_corrupt_after(out_dir: Path, step: int) -> None:
    """Resuming from an older checkpoint: newer ones that cannot be read would outrank the new saves when old
    checkpoints are pruned; they are removed (intact newer ones stay until the run reaches their step)."""
    for s, p in ck.list_checkpoints(out_dir):
        if s > step:
            try:
                ck.read_checkpoint(p)
            except InputError:
                shutil.rmtree(p, ignore_errors=True)


def _check_init_shape(init_ck: ck.Checkpoint, cfg: TrainConfig, vocab_size: int) -> None:
    """--init must hold the shape the config asks for: training another one would label the run wrongly."""
    want = cfg.model_config(vocab_size).to_dict()
    have = dict(init_ck.state.get("model_config") or {})
    diff = [k for k in want if k != "dropout" and have.get(k) != want[k]]
    if diff:
        trained = (init_ck.state.get("train_config") or {}).get("preset")
        shape = lambda d: ", ".join(f"{k}={d.get(k)}" for k in diff)  # noqa: E731
        raise InputError(f"--init {init_ck.path} holds a model with {shape(have)} but the config (preset "
                         f"{cfg.preset!r}) asks for {shape(want)}; pass the --config that trained it"
                         + (f" (preset {trained!r} with the same overrides)" if trained else "")
                         + " or leave --init out to train a fresh model")


def _check_batch_fits(cfg: TrainConfig, mcfg: ModelConfig, seq_len: int, world: int) -> None:
    """A micro-batch whose activations alone exceed the machine's memory fails deep inside MLX; say so first.
    The bound is a floor: each block's input is kept for the backward pass (even with --grad-checkpoint)."""
    per_rank = -(-cfg.batch_size // max(world, 1))
    need = per_rank * seq_len * mcfg.d_model * (mcfg.n_layers + 1) * (2 if cfg.dtype == "bfloat16" else 4)
    have = _memory_bytes()
    if have and need > have:
        raise InputError(f"--batch-size {cfg.batch_size} x --seq-len {seq_len} needs at least {need / 2**30:,.1f} GiB "
                         f"for the activations alone (batch x seq x d_model x (layers + 1) x bytes per value) but "
                         f"this machine has {have / 2**30:,.1f} GiB; lower --batch-size and raise --accum to keep "
                         f"the tokens per step")


def _memory_bytes() -> int | None:
    """The larger of host RAM and the accelerator's memory (None when neither is known)."""
    sizes = []
    try:
        sizes.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        pass
    try:
        info = mx.device_info() if hasattr(mx, "device_info") else {}
        if isinstance(info.get("memory_size"), int):
            sizes.append(info["memory_size"])
    except Exception:  # a backend without device information
        pass
    return max(sizes) if sizes else None


def _model_for(cfg: TrainConfig, manifest: dict, data_dir: Path, out_dir: Path, init, resume: bool,
               resume_step: int | None = None):
    """(model, checkpoint resumed from or None, checkpoint initialised from or None)."""
    data_sha = manifest["tokenizer"]["sha256"]
    if resume:
        state_ck = resume_checkpoint(out_dir, resume_step)
        _check_tokenizer(str(state_ck.path), state_ck.state.get("tokenizer_sha256"), data_sha, data_dir)
        return _load_model(state_ck, cfg.dropout), state_ck, None
    if init is not None:
        init_ck = ck.read_checkpoint(init)
        _check_tokenizer(str(init_ck.path), init_ck.state.get("tokenizer_sha256"), data_sha, data_dir)
        _check_init_shape(init_ck, cfg, int(manifest["vocab_size"]))
        return _load_model(init_ck, cfg.dropout), None, init_ck
    return build_model(cfg.model_config(int(manifest["vocab_size"])), seed=cfg.seed), None, None


def config_for_resume(out_dir: str | Path, overrides: dict, step: int | None = None) -> TrainConfig:
    """The checkpoint's training config with `overrides` (explicit command-line settings) applied."""
    found = resume_checkpoint(out_dir, step, verify=False)
    state, path = found.state, found.path
    base = dict(state.get("train_config") or {})
    if base.get("decay_steps") is None:
        base["decay_steps"] = base.get("steps")  # the schedule's horizon stays that of the original run
    base.update(overrides)
    return TrainConfig.from_dict(base, f"{path}/state.json train_config")


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop records after `step` (a resume replays them), so the file reads like one uninterrupted run."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            pass  # a line cut by a kill
    atomic_write_text(path, "".join(x + "\n" for x in keep))


def train(cfg: TrainConfig, data_dir: str | Path, out_dir: str | Path, *, init: str | Path | None = None,
          resume: bool = False, force: bool = False, progress: bool = True, dist=None,
          result_holder: dict | None = None, resume_step: int | None = None) -> TrainResult:
    """Run (or continue) one training stage. `result_holder["result"]` is the TrainResult as it fills, for
    callers that report on a run that raised (TrainingDiverged). cfg.memory_limit_gb holds for the run only.
    `resume_step` resumes from that checkpoint instead of the newest."""
    with memory_limit(cfg):
        return _train(cfg, data_dir, out_dir, init=init, resume=resume, force=force, progress=progress, dist=dist,
                      result_holder=result_holder, resume_step=resume_step)


def _train(cfg: TrainConfig, data_dir: str | Path, out_dir: str | Path, *, init, resume: bool, force: bool,
           progress: bool, dist, result_holder: dict | None, resume_step: int | None = None) -> TrainResult:
    t_start = time.perf_counter()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    dist = dist or distributed.init()
    mx.reset_peak_memory()
    manifest = load_manifest(data_dir)
    data_sha = manifest["tokenizer"]["sha256"]
    tok_file = data_dir / manifest["tokenizer"]["file"]
    existing = ck.list_checkpoints(out_dir)
    _prepare_out_dir(out_dir, existing, cfg, init, resume, force, dist)
    metrics_path = out_dir / "metrics.jsonl"
    model, state0, init_ck = _model_for(cfg, manifest, data_dir, out_dir, init, resume, resume_step)
    if resume and resume_step is not None and dist.is_main:
        _drop_corrupt_after(out_dir, resume_step)
    mcfg = model.config
    if mcfg.vocab_size != int(manifest["vocab_size"]):
        raise InputError(f"the model's vocabulary ({mcfg.vocab_size}) differs from {data_dir}'s "
                         f"({manifest['vocab_size']}); use the data directory the checkpoint was trained on")
    seq_len = cfg.seq_len or mcfg.max_seq_len
    if seq_len > mcfg.max_seq_len:
        raise InputError(f"--seq-len {seq_len} exceeds the model's max_seq_len {mcfg.max_seq_len}")
    _check_batch_fits(cfg, mcfg, seq_len, dist.size)
    model.checkpoint_blocks = cfg.grad_checkpoint
    corpus = cfg.corpus_name
    sampler = BatchSampler(open_split(data_dir, corpus, "train", manifest), seq_len, cfg.batch_size, cfg.seed,
                           rank=dist.rank, world=dist.size, name=f"{data_dir}/{corpus}/train")
    val_sampler = BatchSampler(open_split(data_dir, corpus, "val", manifest), seq_len, cfg.batch_size,
                               cfg.seed + 1, rank=dist.rank, world=dist.size, name=f"{data_dir}/{corpus}/val")
    optimizer = make_optimizer(cfg)
    result = TrainResult(cfg, mcfg, out_dir, dist.size, 0, n_params=param_count(mcfg),
                         tokens_per_step=cfg.batch_size * cfg.accum * seq_len)
    if result_holder is not None:
        result_holder["result"] = result
    start, tokens_seen = 0, 0
    mx.random.seed(cfg.seed * 1_000_003 + dist.rank)  # dropout masks differ between ranks
    if state0 is not None:
        start = state0.step
        if start >= cfg.steps:
            raise InputError(f"{out_dir} is already at step {start}; pass --steps larger than {start} to continue")
        tokens_seen = int(state0.state.get("tokens_seen", start * result.tokens_per_step))
        state_from_flat(optimizer, state0.optimizer(), model.trainable_parameters())
        sampler.load_state_dict(state0.state["data"])
        keys = state0.state.get("rng", {}).get("mlx_keys") or []
        if len(keys) == dist.size:
            hi, lo = keys[dist.rank]
            mx.random.seed((int(hi) << 32) | int(lo))
        else:
            result.notes.append(f"dropout RNG reseeded: the checkpoint has {len(keys)} rank keys, "
                                f"this run has {dist.size} processes")
    optimizer.init(model.trainable_parameters())
    mx.eval(model.parameters(), optimizer.state)
    result.start_step = result.step = start
    result.tokens_seen = tokens_seen
    if init_ck is not None:
        result.notes.append(f"initialised from {init_ck.path} (step {init_ck.step}); fresh optimizer")
    if state0 is None and init is None:
        result.notes.append(f"vocab_size {mcfg.vocab_size} taken from {data_dir}/manifest.json (the preset "
                            f"{cfg.preset!r} has {PRESETS[cfg.preset].config.vocab_size})")

    step_fn = make_train_step(model, optimizer, cfg, dist)
    eval_fn = make_eval_fn(model, cfg, dist)
    base_state = {"model_config": mcfg.to_dict(), "train_config": cfg.to_dict(), "tokenizer_sha256": data_sha,
                  "stage": cfg.stage, "corpus": corpus, "data_dir": str(data_dir),
                  "init_from": str(init_ck.path) if init_ck else (state0.state.get("init_from") if state0 else None)}

    def evaluate() -> float:
        model.eval()
        val_sampler.load_state_dict({"seed": cfg.seed + 1, "epoch": 0, "cursor": 0})
        total = mx.array(0.0)
        for _ in range(cfg.eval_batches):
            x, y = val_sampler.next()
            total = total + eval_fn(mx.array(x), mx.array(y))
        model.train()
        return (total / cfg.eval_batches).item()

    def draw():
        """The next step's micro-batches, and the sampler state once they are taken (what a checkpoint
        after that step must record, even though the loop draws one step ahead)."""
        batches = [tuple(map(mx.array, sampler.next())) for _ in range(cfg.accum)]
        return batches, sampler.state_dict()

    def save(step: int, data_state: dict) -> None:
        mx.eval(model.parameters(), optimizer.state)
        keys = np.array(dist.gather(mx.random.state[0])).tolist()
        ok, err = 1.0, None
        if dist.is_main:
            try:
                path = ck.save_checkpoint(
                    out_dir, step, weights=dict(tree_flatten(model.parameters())),
                    optimizer=state_to_flat(optimizer), tokenizer_file=tok_file, keep=cfg.keep,
                    state={**base_state, "tokens_seen": tokens_seen, "data": data_state,
                           "rng": {"mlx_keys": keys, "numpy": "none: batch order is a function of "
                                   "(seed, epoch), see reference/batches.py"}})
                result.checkpoint = str(path)
            except ck.CheckpointWriteError as e:
                ok, err = 0.0, e
        if dist.size > 1:
            ok = float(dist.average(mx.array(ok)).item())
        if err is not None:
            raise err
        if ok < 1.0:
            raise ck.CheckpointWriteError(f"rank 0 could not write checkpoint {step} to {out_dir}; see its message")

    mfile = None
    if dist.is_main:
        if resume:
            _truncate_metrics(metrics_path, start)
        mfile = open(metrics_path, "a" if resume else "w", encoding="utf-8")

    def log(rec: dict) -> None:
        if mfile is not None:
            mfile.write(json.dumps(rec) + "\n")
            mfile.flush()

    nan_at = ck.faults().get("nan_at")
    sched = cfg.schedule()
    bar = None
    if progress and dist.is_main:
        from tqdm import tqdm
        bar = tqdm(total=cfg.steps, initial=start, desc=f"{cfg.stage} {corpus}", unit="step", file=sys.stderr,
                   dynamic_ncols=True)
    model.train()
    last_val = None
    try:
        with _Stop() as stop:
            if start == 0:
                last_val = evaluate()
                result.val.append((0, last_val))
                log({"kind": "eval", "step": 0, "val_loss": last_val, "val_ppl": math.exp(min(last_val, 50))})

            def launch(step: int):
                """Queue step `step` (0-based) on the device; (step, loss, norm, sampler state after it)."""
                batches, data_state = draw()
                loss, norm = step_fn(batches)
                mx.async_eval(step_fn.state, loss, norm)
                return step, loss, norm, data_state

            def drains(s: int) -> bool:
                """Steps after which the pipeline is emptied: evaluation, checkpoints and the data-parallel
                stop consensus need the parameters of exactly step s."""
                return (s % cfg.eval_every == 0 or s % cfg.save_every == 0 or s >= cfg.steps or stop.flag
                        or (dist.size > 1 and s % cfg.log_every == 0))

            cur = launch(start) if start < cfg.steps else None
            t_prev = time.perf_counter()
            win_steps, win_s = 0, 0.0  # steps and their summed times since the progress bar last showed a rate
            refilled = True  # the first step follows an empty queue
            while cur is not None:
                step, loss, norm, data_state = cur
                s = step + 1
                # queue the next step before reading this one back: the host builds step s+1's graph
                # while the device still runs step s
                nxt = launch(s) if not drains(s) else None
                loss_v, norm_v = loss.item(), norm.item()
                now = time.perf_counter()
                dt, t_prev = now - t_prev, now
                if nan_at is not None and s == int(nan_at):
                    loss_v = float("nan")
                if not (math.isfinite(loss_v) and math.isfinite(norm_v)):
                    log({"kind": "diverged", "step": s, "loss": str(loss_v), "grad_norm": str(norm_v)})
                    last = ck.latest_checkpoint(out_dir)
                    raise TrainingDiverged(
                        f"loss became {loss_v} (gradient norm {norm_v}) at step {s}; stopped without "
                        f"saving, the last good checkpoint is {last.name if last else 'none'}; lower --lr, "
                        f"raise --warmup or lower --grad-clip and --resume or restart")
                tokens_seen += result.tokens_per_step
                result.step, result.tokens_seen = s, tokens_seen
                result.losses.append((s, loss_v))
                # timed steps: past the warm-up, and with a queued successor on both sides: reading a result back
                # lags while the next step runs, so the step that drains the queue reads short and the one after
                # it long (their times stay in metrics.jsonl)
                if s - start > WARMUP_STEPS and nxt is not None and not refilled:
                    result.step_times.append(dt)
                log({"kind": "train", "step": s, "loss": loss_v, "lr": lr_at(sched, step), "grad_norm": norm_v,
                     "step_time_s": dt, "tokens_per_s": result.tokens_per_step / dt, "tokens": tokens_seen})
                if nxt is None and (s % cfg.eval_every == 0 or s == cfg.steps):
                    last_val = evaluate()
                    result.val.append((s, last_val))
                    log({"kind": "eval", "step": s, "val_loss": last_val, "val_ppl": math.exp(min(last_val, 50))})
                # a signal that arrives while step s+1 is queued stops after step s+1 (its parameters are
                # the ones a checkpoint can record); data-parallel ranks agree at drained log steps
                stopping = stop.flag and nxt is None
                if dist.size > 1:
                    stopping = nxt is None and s % cfg.log_every == 0 and \
                        dist.average(mx.array(float(stop.flag))).item() > 0
                if nxt is None and (s % cfg.save_every == 0 or s == cfg.steps or stopping):
                    save(s, data_state)
                win_steps, win_s = win_steps + 1, win_s + dt
                if bar is not None:
                    bar.update(1)
                    if s % cfg.log_every == 0 or s == cfg.steps:
                        # the rate over the steps since the last display: one step's time alone misleads at
                        # a drained step, which reads back early (a 2-core CPU showed 154,000 tok/s there)
                        bar.set_postfix(loss=f"{loss_v:.3f}", val=f"{last_val:.3f}" if last_val else "-",
                                        tok_s=f"{result.tokens_per_step * win_steps / max(win_s, 1e-9):,.0f}")
                        win_steps, win_s = 0, 0.0
                if stopping:
                    result.interrupted = True
                    break
                refilled = nxt is None and s < cfg.steps
                if refilled:
                    nxt = launch(s)
                    t_prev = time.perf_counter()
                cur = nxt
    finally:
        if bar is not None:
            bar.close()
        if mfile is not None:
            mfile.close()
        result.peak_memory_bytes = int(mx.get_peak_memory())
        result.max_rss_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
        result.wall_s = time.perf_counter() - t_start
    return result
