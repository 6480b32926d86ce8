"""Where a training run starts from: the output folder checked and cleaned (fresh, --force, --resume), the
model built fresh, initialised from --init or restored from the checkpoint a resume continues, and the
checks that catch a wrong data folder, shape or batch before any step runs."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import mlx.core as mx

from . import checkpoint as ck
from .config import ModelConfig
from .errors import InputError
from .files import atomic_write_text
from .model import build_model
from .train import TrainConfig


def _check_tokenizer(where: str, ck_sha: str | None, data_sha: str, data_dir: Path) -> None:
    if ck_sha != data_sha:
        raise InputError(f"tokenizer mismatch: checkpoint {where} was trained with tokenizer sha256 {ck_sha} "
                         f"but {data_dir} has {data_sha}; use the data directory the checkpoint was trained on")


def prepare_out_dir(out_dir: Path, existing: list, cfg: TrainConfig, init, resume: bool, force: bool, dist) -> None:
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


def drop_corrupt_after(out_dir: Path, step: int) -> None:
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


def check_model_fits(cfg: TrainConfig, mcfg: ModelConfig, manifest: dict, data_dir: Path, world: int) -> int:
    """The sequence length the run trains at, once the model's vocabulary, context and memory allow it."""
    if mcfg.vocab_size != int(manifest["vocab_size"]):
        raise InputError(f"the model's vocabulary ({mcfg.vocab_size}) differs from {data_dir}'s "
                         f"({manifest['vocab_size']}); use the data directory the checkpoint was trained on")
    seq_len = cfg.seq_len or mcfg.max_seq_len
    if seq_len > mcfg.max_seq_len:
        raise InputError(f"--seq-len {seq_len} exceeds the model's max_seq_len {mcfg.max_seq_len}")
    _check_batch_fits(cfg, mcfg, seq_len, world)
    return seq_len


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


def model_for(cfg: TrainConfig, manifest: dict, data_dir: Path, out_dir: Path, init, resume: bool,
               resume_step: int | None = None):
    """(model, checkpoint resumed from or None, checkpoint initialised from or None)."""
    data_sha = manifest["tokenizer"]["sha256"]
    if resume:
        state_ck = resume_checkpoint(out_dir, resume_step)
        _check_tokenizer(str(state_ck.path), state_ck.state.get("tokenizer_sha256"), data_sha, data_dir)
        return state_ck.model(cfg.dropout), state_ck, None
    if init is not None:
        init_ck = ck.read_checkpoint(init)
        _check_tokenizer(str(init_ck.path), init_ck.state.get("tokenizer_sha256"), data_sha, data_dir)
        _check_init_shape(init_ck, cfg, int(manifest["vocab_size"]))
        return init_ck.model(cfg.dropout), None, init_ck
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


def truncate_metrics(path: Path, step: int) -> None:
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
