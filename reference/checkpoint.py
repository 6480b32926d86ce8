"""Checkpoints: one directory per save, made complete under a temporary name and renamed into place.

    RUN_DIR/ckpt-00000100/{model,optimizer}.safetensors, state.json, tokenizer.json
    RUN_DIR/latest           names the newest complete checkpoint (written after the rename)

A checkpoint directory exists under its final name only after every file in it was written and fsynced,
so a kill at any moment leaves either the previous set of checkpoints or the previous set plus one
complete new one. `latest` is a convenience for people; readers scan the directory names, which also
covers a kill between the rename and the update of `latest`.

Fault injection for the test suite (HARNESS_FAULT, comma-separated):
    ckpt_sleep:S      sleep S seconds after model.safetensors is written, before the rename
    ckpt_enospc:N     the N-th save in this process fails as if the disk were full, half-way through
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx

from .errors import InputError
from .files import atomic_write_text, fsync_dir, fsync_file, write_text_synced
from .packed import sha256_file

FORMAT = "harness-ckpt-v1"
_NAME = re.compile(r"^ckpt-(\d{8,})$")
_saves_in_process = 0


class CheckpointWriteError(InputError):
    """A checkpoint could not be written (disk full, permissions); the previous one is untouched."""


def faults() -> dict[str, str]:
    out = {}
    for item in filter(None, os.environ.get("HARNESS_FAULT", "").split(",")):
        k, _, v = item.partition(":")
        out[k.strip()] = v.strip()
    return out


def ckpt_name(step: int) -> str:
    return f"ckpt-{step:08d}"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints in `run_dir`, oldest first, as (step, path)."""
    d = Path(run_dir)
    if not d.is_dir():
        return []
    found = []
    for p in d.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    ck = list_checkpoints(run_dir)
    return ck[-1][1] if ck else None


def resolve(path: str | Path) -> Path:
    """A checkpoint directory from either itself or a run directory (its newest checkpoint)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"checkpoint {p} does not exist; pass a run directory written by `harness train` "
                         f"or one of its ckpt-* directories")
    if (p / "state.json").exists() or _NAME.match(p.name):
        return p
    newest = latest_checkpoint(p)
    if newest is None:
        raise InputError(f"{p} holds no checkpoint (no ckpt-* directory); train one with "
                         f"`harness train --out {p}` or pass a ckpt-* directory")
    return newest


def _write_arrays(p: Path, arrays: dict[str, mx.array], inject_enospc: bool) -> None:
    if inject_enospc:
        with open(p, "wb") as f:
            f.write(b"\0" * 1024)  # a partial file, as a real full disk leaves behind
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(p))
    mx.save_safetensors(str(p), arrays, metadata={"format": "mlx"})
    fsync_file(p)


def save_checkpoint(run_dir: str | Path, step: int, *, weights: dict[str, mx.array],
                    optimizer: dict[str, mx.array], state: dict, tokenizer_file: str | Path | None,
                    keep: int = 3) -> Path:
    """Write checkpoint `step` atomically, point `latest` at it, and delete all but the newest `keep`.

    `state` is the JSON part (step, data position, RNG, configs, tokenizer hash...); the format marker
    and the sha256 of every file are added here. Raises CheckpointWriteError (leaving earlier
    checkpoints as they were) when a file cannot be written."""
    global _saves_in_process
    _saves_in_process += 1
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    final = run_dir / ckpt_name(step)
    f = faults()
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=run_dir))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; a checkpoint is as readable as other files
    try:
        enospc = f.get("ckpt_enospc") == str(_saves_in_process)
        _write_arrays(tmp / "model.safetensors", weights, False)
        if "ckpt_sleep" in f:
            time.sleep(float(f["ckpt_sleep"]))
        _write_arrays(tmp / "optimizer.safetensors", optimizer, enospc)
        files = ["model.safetensors", "optimizer.safetensors"]
        if tokenizer_file is not None:
            shutil.copyfile(tokenizer_file, tmp / "tokenizer.json")
            fsync_file(tmp / "tokenizer.json")
            files.append("tokenizer.json")
        full = {"format": FORMAT, **state, "step": int(step),
                "files": {name: sha256_file(tmp / name) for name in files}}
        write_text_synced(tmp / "state.json", json.dumps(full, indent=1, sort_keys=True) + "\n")
        fsync_dir(tmp)
        if final.exists():  # re-saving a step (after a resume): the new one replaces it
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(run_dir)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, (OSError, RuntimeError)):
            prev = latest_checkpoint(run_dir)
            full_disk = getattr(e, "errno", None) == errno.ENOSPC or _disk_nearly_full(run_dir)
            why = "no space left on device" if full_disk else str(e)
            keep_msg = f"the previous checkpoint {prev} is intact" if prev else "no earlier checkpoint exists"
            raise CheckpointWriteError(
                f"could not write checkpoint {final} ({why}); {keep_msg}; free space in {run_dir} "
                f"and continue with --resume") from None
        raise
    _write_latest(run_dir, final.name)
    prune(run_dir, keep)
    return final


def _disk_nearly_full(d: Path) -> bool:
    try:
        return shutil.disk_usage(d).free < (1 << 20)
    except OSError:
        return False


def _write_latest(run_dir: Path, name: str) -> None:
    try:
        atomic_write_text(run_dir / "latest", name + "\n")
    except OSError:
        pass  # `latest` is advisory; readers scan the directory


def prune(run_dir: str | Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints and any temporary directory a killed save left."""
    run_dir = Path(run_dir)
    for p in run_dir.glob(".tmp-ckpt-*"):
        shutil.rmtree(p, ignore_errors=True)
    if keep > 0:
        for _, p in list_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(p, ignore_errors=True)


@dataclass
class Checkpoint:
    path: Path
    state: dict

    @property
    def step(self) -> int:
        return int(self.state["step"])

    def weights(self) -> dict[str, mx.array]:
        return _load_arrays(self.path / "model.safetensors")

    def optimizer(self) -> dict[str, mx.array]:
        return _load_arrays(self.path / "optimizer.safetensors")

    def model(self, dropout: float | None = None):
        """The GPT this checkpoint holds (its config, `dropout` overriding the saved rate), weights checked
        against the shapes the config gives and loaded strictly."""
        from mlx.utils import tree_flatten

        from .config import ModelConfig
        from .model import GPT

        try:
            cfg = ModelConfig.from_dict(self.state["model_config"])
        except (TypeError, ValueError) as e:
            raise InputError(f"{self.path / 'state.json'} has an invalid model_config ({e}); the checkpoint is "
                             f"corrupt") from None
        model = GPT(cfg if dropout is None else cfg.with_(dropout=dropout))
        weights = self.weights()
        check_weights(weights, {k: v.shape for k, v in tree_flatten(model.parameters())}, self.path)
        model.load_weights(list(weights.items()), strict=True)
        return model

    @property
    def tokenizer_file(self) -> Path:
        return self.path / "tokenizer.json"


def _load_arrays(p: Path) -> dict[str, mx.array]:
    try:
        return mx.load(str(p))
    except (RuntimeError, ValueError, OSError) as e:
        raise InputError(f"checkpoint file {p} cannot be read ({e}); it is truncated or corrupt: "
                         f"use an earlier checkpoint or retrain") from None


def read_checkpoint(path: str | Path, *, verify: bool = True) -> Checkpoint:
    """Open a checkpoint (a ckpt-* directory or a run directory) and check its files' sha256."""
    p = resolve(path)
    sj = p / "state.json"
    if not sj.is_file():
        raise InputError(f"checkpoint {p} has no state.json; it is incomplete: use an earlier checkpoint "
                         f"or retrain")
    try:
        state = json.loads(sj.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{sj} is not valid JSON ({e}); the checkpoint is corrupt: use an earlier one") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        got = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise InputError(f"{sj} has format {got!r}, expected {FORMAT!r}; it was not written by `harness train`")
    for key in ("step", "model_config", "files"):
        if key not in state:
            raise InputError(f"{sj} lacks {key!r}; the checkpoint is corrupt: use an earlier one")
    for name in ("model.safetensors", "optimizer.safetensors"):
        if name not in state["files"]:
            raise InputError(f"{sj} lists no {name}; the checkpoint is corrupt: use an earlier one")
    if verify:
        for name, digest in state["files"].items():
            fp = p / name
            if not fp.is_file():
                raise InputError(f"checkpoint file {fp} is missing; use an earlier checkpoint or retrain")
            if sha256_file(fp) != digest:
                raise InputError(f"checkpoint file {fp} does not match the sha256 in {sj}; it is truncated "
                                 f"or corrupt: use an earlier checkpoint or retrain")
    return Checkpoint(p, state)


def check_weights(weights: dict[str, mx.array], expected: dict[str, tuple], where: Path) -> None:
    """Raise InputError unless `weights` has exactly the expected names and shapes."""
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        raise InputError(f"checkpoint {where} does not match its model config (missing {missing[:5]}, "
                         f"unexpected {extra[:5]}); it was written by a different model: retrain or pass "
                         f"the matching checkpoint")
    for k, shape in expected.items():
        if tuple(weights[k].shape) != tuple(shape):
            raise InputError(f"checkpoint {where}: {k} has shape {tuple(weights[k].shape)} but the model config "
                             f"needs {tuple(shape)}; the checkpoint is corrupt or from another model")


def load_for_inference(path: str | Path):
    """(model in eval mode, tokenizers.Tokenizer, info) from a run directory or a ckpt-* directory.

    info: {"path", "step", "stage", "tokenizer_sha256", "model_config", "train_config", "tokens_seen"}."""
    from tokenizers import Tokenizer

    ck = read_checkpoint(path)
    model = ck.model()
    cfg = model.config
    mx.eval(model.parameters())
    model.eval()
    if not ck.tokenizer_file.is_file():
        raise InputError(f"checkpoint {ck.path} has no tokenizer.json; copy the data directory's tokenizer.json "
                         f"into it or retrain")
    try:
        tok = Tokenizer.from_file(str(ck.tokenizer_file))
    except Exception as e:  # tokenizers raises its own Exception type for a malformed file
        raise InputError(f"{ck.tokenizer_file} is not a valid tokenizer file ({e}); the checkpoint is corrupt")
    info = {"path": str(ck.path), "step": ck.step, "stage": ck.state.get("stage"),
            "tokenizer_sha256": ck.state.get("tokenizer_sha256"), "model_config": cfg.to_dict(),
            "train_config": ck.state.get("train_config"), "tokens_seen": ck.state.get("tokens_seen")}
    return model, tok, info
