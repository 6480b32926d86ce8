"""The training loop: steps, periodic validation, checkpoints, per-step metrics (JSONL), and the faults it
survives; where a run starts from (fresh, --init or --resume) is train_setup.py.

Faults: a non-finite loss or gradient norm stops the run (TrainingDiverged) without saving, so the last
checkpoint is the last good one; SIGINT/SIGTERM finish the current step, save and return with
`interrupted`; a failed save raises reference.checkpoint.CheckpointWriteError and leaves the earlier
checkpoints as they were. HARNESS_FAULT=nan_at:STEP makes the loss of step STEP read as NaN (tests).
"""
from __future__ import annotations

import json
import math
import resource
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
from .model import GPT
from .optim import state_from_flat, state_to_flat
from .packed import load_manifest, open_split
from .schedule import lr_at
from .train import TrainConfig, make_eval_fn, make_optimizer, make_train_step, memory_limit
from .train_setup import (check_model_fits, config_for_resume, drop_corrupt_after, model_for,  # noqa: F401
                          prepare_out_dir, remove_stray_temporaries, resume_checkpoint, truncate_metrics)

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
    run = _Run.prepare(cfg, Path(data_dir), Path(out_dir), dist or distributed.init(), init=init, resume=resume,
                       force=force, resume_step=resume_step, result_holder=result_holder)
    run.open_outputs(resume, progress)
    try:
        with _Stop() as stop:
            run.loop(stop)
    finally:
        run.close(t_start)
    return run.result


class _Run:
    """One training stage in progress: the model, optimizer and samplers, the metrics file, the progress bar
    and the TrainResult as it fills. `loop` runs the steps; each of its parts is one method below."""

    def __init__(self, cfg: TrainConfig, data_dir: Path, out_dir: Path, dist, manifest: dict, model: GPT,
                 seq_len: int):
        self.cfg, self.data_dir, self.out_dir, self.dist, self.model = cfg, data_dir, out_dir, dist, model
        self.tok_file = data_dir / manifest["tokenizer"]["file"]
        self.data_sha = manifest["tokenizer"]["sha256"]
        self.corpus = corpus = cfg.corpus_name
        model.checkpoint_blocks = cfg.grad_checkpoint
        self.sampler = BatchSampler(open_split(data_dir, corpus, "train", manifest), seq_len, cfg.batch_size,
                                    cfg.seed, rank=dist.rank, world=dist.size, name=f"{data_dir}/{corpus}/train")
        self.val_sampler = BatchSampler(open_split(data_dir, corpus, "val", manifest), seq_len, cfg.batch_size,
                                        cfg.seed + 1, rank=dist.rank, world=dist.size, name=f"{data_dir}/{corpus}/val")
        self.optimizer = make_optimizer(cfg)
        self.result = TrainResult(cfg, model.config, out_dir, dist.size, 0, n_params=param_count(model.config),
                                  tokens_per_step=cfg.batch_size * cfg.accum * seq_len)
        self.start = 0
        self.mfile = self.bar = self.last_val = None
        self.nan_at = ck.faults().get("nan_at")
        self.sched = cfg.schedule()

    @classmethod
    def prepare(cls, cfg: TrainConfig, data_dir: Path, out_dir: Path, dist, *, init, resume: bool, force: bool,
                resume_step: int | None, result_holder: dict | None) -> "_Run":
        """Check the inputs, build or restore the model and optimizer, and compile the step."""
        mx.reset_peak_memory()
        manifest = load_manifest(data_dir)
        prepare_out_dir(out_dir, ck.list_checkpoints(out_dir), cfg, init, resume, force, dist)
        model, state0, init_ck = model_for(cfg, manifest, data_dir, out_dir, init, resume, resume_step)
        if resume and resume_step is not None and dist.is_main:
            drop_corrupt_after(out_dir, resume_step)
        seq_len = check_model_fits(cfg, model.config, manifest, data_dir, dist.size)
        run = cls(cfg, data_dir, out_dir, dist, manifest, model, seq_len)
        if result_holder is not None:
            result_holder["result"] = run.result
        run.restore(state0, init_ck, fresh=state0 is None and init is None)
        return run

    def restore(self, state0, init_ck, fresh: bool) -> None:
        """Optimizer, data order and RNG from the checkpoint resumed (if any), then the compiled functions."""
        cfg, dist, model, optimizer, result = self.cfg, self.dist, self.model, self.optimizer, self.result
        mx.random.seed(cfg.seed * 1_000_003 + dist.rank)  # dropout masks differ between ranks
        tokens_seen = 0
        if state0 is not None:
            self.start = state0.step
            if self.start >= cfg.steps:
                raise InputError(f"{self.out_dir} is already at step {self.start}; pass --steps larger than "
                                 f"{self.start} to continue")
            tokens_seen = int(state0.state.get("tokens_seen", self.start * result.tokens_per_step))
            state_from_flat(optimizer, state0.optimizer(), model.trainable_parameters())
            self.sampler.load_state_dict(state0.state["data"])
            keys = state0.state.get("rng", {}).get("mlx_keys") or []
            if len(keys) == dist.size:
                hi, lo = keys[dist.rank]
                mx.random.seed((int(hi) << 32) | int(lo))
            else:
                result.notes.append(f"dropout RNG reseeded: the checkpoint has {len(keys)} rank keys, "
                                    f"this run has {dist.size} processes")
        optimizer.init(model.trainable_parameters())
        mx.eval(model.parameters(), optimizer.state)
        result.start_step = result.step = self.start
        result.tokens_seen = tokens_seen
        if init_ck is not None:
            result.notes.append(f"initialised from {init_ck.path} (step {init_ck.step}); fresh optimizer")
        if fresh:
            result.notes.append(f"vocab_size {model.config.vocab_size} taken from {self.data_dir}/manifest.json "
                                f"(the preset {cfg.preset!r} has {PRESETS[cfg.preset].config.vocab_size})")
        self.step_fn = make_train_step(model, optimizer, cfg, dist)
        self.eval_fn = make_eval_fn(model, cfg, dist)
        self.base_state = {
            "model_config": model.config.to_dict(), "train_config": cfg.to_dict(), "tokenizer_sha256": self.data_sha,
            "stage": cfg.stage, "corpus": self.corpus, "data_dir": str(self.data_dir),
            "init_from": str(init_ck.path) if init_ck else (state0.state.get("init_from") if state0 else None)}

    def open_outputs(self, resume: bool, progress: bool) -> None:
        """metrics.jsonl (cut back to the step resumed from) and the progress bar, on rank 0 only."""
        if self.dist.is_main:
            metrics_path = self.out_dir / "metrics.jsonl"
            if resume:
                truncate_metrics(metrics_path, self.start)
            self.mfile = open(metrics_path, "a" if resume else "w", encoding="utf-8")
            if progress:
                from tqdm import tqdm
                self.bar = tqdm(total=self.cfg.steps, initial=self.start, desc=f"{self.cfg.stage} {self.corpus}",
                                unit="step", file=sys.stderr, dynamic_ncols=True)
        self.model.train()

    def loop(self, stop: _Stop) -> None:
        """Steps from `start` to cfg.steps, one always queued behind the one being read back."""
        cfg = self.cfg
        if self.start == 0:
            self.validate(0)
        cur = self.launch(self.start) if self.start < cfg.steps else None
        self.t_prev = time.perf_counter()
        self.window = (0, 0.0)  # steps and their summed times since the progress bar last showed a rate
        refilled = True  # the first step follows an empty queue
        while cur is not None:
            step, loss, norm, data_state = cur
            s = step + 1
            # queue the next step before reading this one back: the host builds step s+1's graph
            # while the device still runs step s
            nxt = self.launch(s) if not self.drains(s, stop) else None
            loss_v, dt = self.read_back(s, loss, norm, timed=nxt is not None and not refilled)
            stopping = self.at_drain(s, data_state, stop) if nxt is None else False
            self.show(s, loss_v, dt)
            if stopping:
                self.result.interrupted = True
                break
            refilled = nxt is None and s < cfg.steps
            if refilled:
                nxt = self.launch(s)
                self.t_prev = time.perf_counter()
            cur = nxt

    def launch(self, step: int):
        """Queue step `step` (0-based) on the device; (step, loss, norm, sampler state after it). The sampler
        state is what a checkpoint after that step must record, though the loop draws one step ahead."""
        batches = [tuple(map(mx.array, self.sampler.next())) for _ in range(self.cfg.accum)]
        data_state = self.sampler.state_dict()
        loss, norm = self.step_fn(batches)
        mx.async_eval(self.step_fn.state, loss, norm)
        return step, loss, norm, data_state

    def drains(self, s: int, stop: _Stop) -> bool:
        """Steps after which the pipeline is emptied: evaluation, checkpoints and the data-parallel stop
        consensus need the parameters of exactly step s."""
        cfg = self.cfg
        return (s % cfg.eval_every == 0 or s % cfg.save_every == 0 or s >= cfg.steps or stop.flag
                or (self.dist.size > 1 and s % cfg.log_every == 0))

    def read_back(self, s: int, loss, norm, timed: bool) -> tuple[float, float]:
        """Step s's loss and gradient norm, checked finite, recorded and logged; (loss, seconds)."""
        loss_v, norm_v = loss.item(), norm.item()
        now = time.perf_counter()
        dt, self.t_prev = now - self.t_prev, now
        if self.nan_at is not None and s == int(self.nan_at):
            loss_v = float("nan")
        if not (math.isfinite(loss_v) and math.isfinite(norm_v)):
            self.log({"kind": "diverged", "step": s, "loss": str(loss_v), "grad_norm": str(norm_v)})
            last = ck.latest_checkpoint(self.out_dir)
            raise TrainingDiverged(
                f"loss became {loss_v} (gradient norm {norm_v}) at step {s}; stopped without "
                f"saving, the last good checkpoint is {last.name if last else 'none'}; lower --lr, "
                f"raise --warmup or lower --grad-clip and --resume or restart")
        r = self.result
        r.tokens_seen += r.tokens_per_step
        r.step = s
        r.losses.append((s, loss_v))
        # timed steps: past the warm-up, and with a queued successor on both sides: reading a result back
        # lags while the next step runs, so the step that drains the queue reads short and the one after
        # it long (their times stay in metrics.jsonl)
        if timed and s - self.start > WARMUP_STEPS:
            r.step_times.append(dt)
        self.log({"kind": "train", "step": s, "loss": loss_v, "lr": lr_at(self.sched, s - 1), "grad_norm": norm_v,
                  "step_time_s": dt, "tokens_per_s": r.tokens_per_step / dt, "tokens": r.tokens_seen})
        return loss_v, dt

    def at_drain(self, s: int, data_state: dict, stop: _Stop) -> bool:
        """Validation and checkpoint after a drained step s; True when the run stops here."""
        cfg, dist = self.cfg, self.dist
        if s % cfg.eval_every == 0 or s == cfg.steps:
            self.validate(s)
        # a signal that arrives while step s+1 is queued stops after step s+1 (its parameters are
        # the ones a checkpoint can record); data-parallel ranks agree at drained log steps
        stopping = stop.flag
        if dist.size > 1:
            stopping = s % cfg.log_every == 0 and dist.average(mx.array(float(stop.flag))).item() > 0
        if s % cfg.save_every == 0 or s == cfg.steps or stopping:
            self.save(s, data_state)
        return stopping

    def show(self, s: int, loss_v: float, dt: float) -> None:
        steps, secs = self.window[0] + 1, self.window[1] + dt
        self.window = (steps, secs)
        if self.bar is None:
            return
        self.bar.update(1)
        if s % self.cfg.log_every == 0 or s == self.cfg.steps:
            # the rate over the steps since the last display: one step's time alone misleads at
            # a drained step, which reads back early (a 2-core CPU showed 154,000 tok/s there)
            self.bar.set_postfix(loss=f"{loss_v:.3f}", val=f"{self.last_val:.3f}" if self.last_val else "-",
                                 tok_s=f"{self.result.tokens_per_step * steps / max(secs, 1e-9):,.0f}")
            self.window = (0, 0.0)

    def validate(self, s: int) -> None:
        """Mean loss over cfg.eval_batches validation batches, always the same ones; recorded and logged."""
        cfg, model = self.cfg, self.model
        model.eval()
        self.val_sampler.load_state_dict({"seed": cfg.seed + 1, "epoch": 0, "cursor": 0})
        total = mx.array(0.0)
        for _ in range(cfg.eval_batches):
            x, y = self.val_sampler.next()
            total = total + self.eval_fn(mx.array(x), mx.array(y))
        model.train()
        self.last_val = (total / cfg.eval_batches).item()
        self.result.val.append((s, self.last_val))
        self.log({"kind": "eval", "step": s, "val_loss": self.last_val, "val_ppl": math.exp(min(self.last_val, 50))})

    def save(self, step: int, data_state: dict) -> None:
        model, optimizer, dist = self.model, self.optimizer, self.dist
        mx.eval(model.parameters(), optimizer.state)
        keys = np.array(dist.gather(mx.random.state[0])).tolist()
        ok, err = 1.0, None
        if dist.is_main:
            try:
                path = ck.save_checkpoint(
                    self.out_dir, step, weights=dict(tree_flatten(model.parameters())),
                    optimizer=state_to_flat(optimizer), tokenizer_file=self.tok_file, keep=self.cfg.keep,
                    state={**self.base_state, "tokens_seen": self.result.tokens_seen, "data": data_state,
                           "rng": {"mlx_keys": keys, "numpy": "none: batch order is a function of "
                                   "(seed, epoch), see reference/batches.py"}})
                self.result.checkpoint = str(path)
            except ck.CheckpointWriteError as e:
                ok, err = 0.0, e
        if dist.size > 1:
            ok = float(dist.average(mx.array(ok)).item())
        if err is not None:
            raise err
        if ok < 1.0:
            raise ck.CheckpointWriteError(f"rank 0 could not write checkpoint {step} to {self.out_dir}; see its message")

    def log(self, rec: dict) -> None:
        if self.mfile is not None:
            self.mfile.write(json.dumps(rec) + "\n")
            self.mfile.flush()

    def close(self, t_start: float) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.mfile is not None:
            self.mfile.close()
        self.result.peak_memory_bytes = int(mx.get_peak_memory())
        self.result.max_rss_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
        self.result.wall_s = time.perf_counter() - t_start
