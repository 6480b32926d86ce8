"""reference.checkpoint: atomic saves, keep-last-N, load_for_inference, and every kind of broken checkpoint
(missing, truncated, corrupt, mismatched, killed mid-write, disk full)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlx.core as mx
import pytest
from mlx.utils import tree_flatten

from reference import checkpoint as ck
from reference.config import ModelConfig
from reference.errors import InputError
from reference.model import build_model
from reference.optim import AdamW, state_to_flat
from reference.runtime import preload_env

CFG = ModelConfig(vocab_size=300, d_model=32, n_layers=2, n_heads=2, d_ff=64, max_seq_len=32, dropout=0.0)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory):
    from reference.tokenizer import save_tokenizer, train_tokenizer

    tok = train_tokenizer(["echo hello world\n", "for f in *; do ls $f; done\n"] * 50 + [
        "the quick brown fox jumps over the lazy dog " * 3], 300, min_frequency=1)
    return save_tokenizer(tok, tmp_path_factory.mktemp("tok") / "tokenizer.json")


def _save(run_dir, step, tokenizer_file, keep=3, seed=0):
    model = build_model(CFG, seed=seed)
    opt = AdamW(1e-3)
    opt.init(model.trainable_parameters())
    mx.eval(opt.state)
    from reference.packed import sha256_file

    return ck.save_checkpoint(run_dir, step, weights=dict(tree_flatten(model.parameters())),
                              optimizer=state_to_flat(opt), tokenizer_file=tokenizer_file, keep=keep,
                              state={"model_config": CFG.to_dict(), "train_config": {"seed": seed},
                                     "tokenizer_sha256": sha256_file(tokenizer_file), "stage": "pretrain",
                                     "tokens_seen": step * 10, "data": {"seed": 0, "epoch": 0, "cursor": 0}}), model


def test_roundtrip_and_load_for_inference(tmp_path, tokenizer_file):
    path, model = _save(tmp_path, 5, tokenizer_file)
    assert path.name == "ckpt-00000005" and (tmp_path / "latest").read_text().strip() == path.name
    for where in (tmp_path, path):
        m2, tok, info = ck.load_for_inference(where)
        assert info["step"] == 5 and info["stage"] == "pretrain" and info["model_config"] == CFG.to_dict()
        assert not m2.training
        ids = mx.array([[1, 2, 3, 4]])
        model.eval()
        assert mx.array_equal(m2(ids), model(ids)).item()
        assert tok.get_vocab_size() == 300
    state = json.loads((path / "state.json").read_text())
    assert state["format"] == ck.FORMAT and set(state["files"]) == {"model.safetensors", "optimizer.safetensors",
                                                                    "tokenizer.json"}


def test_keep_last_n_and_latest(tmp_path, tokenizer_file):
    for s in (1, 2, 3, 4, 5):
        _save(tmp_path, s, tokenizer_file, keep=2)
    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [4, 5]
    assert ck.latest_checkpoint(tmp_path).name == "ckpt-00000005"
    assert not list(tmp_path.glob(".tmp-*"))


def test_newest_directory_wins_over_a_stale_latest_file(tmp_path, tokenizer_file):
    _save(tmp_path, 1, tokenizer_file)
    _save(tmp_path, 2, tokenizer_file)
    (tmp_path / "latest").write_text("ckpt-00000001\n")  # a kill between the rename and the update of `latest`
    assert ck.resolve(tmp_path).name == "ckpt-00000002"


def _corrupt_cases():
    def truncate(p):
        f = p / "model.safetensors"
        f.write_bytes(f.read_bytes()[:100])

    def flip(p):
        f = p / "model.safetensors"
        b = bytearray(f.read_bytes())
        b[-5] ^= 0xFF
        f.write_bytes(bytes(b))

    def drop_state(p):
        (p / "state.json").unlink()

    def bad_json(p):
        (p / "state.json").write_text("{not json")

    def other_model(p):
        s = json.loads((p / "state.json").read_text())
        s["model_config"]["n_layers"] = 3
        (p / "state.json").write_text(json.dumps(s))

    def wider_model(p):
        s = json.loads((p / "state.json").read_text())
        s["model_config"]["d_ff"] = 128
        (p / "state.json").write_text(json.dumps(s))

    def no_optimizer(p):
        (p / "optimizer.safetensors").unlink()

    def bad_tokenizer(p):
        s = json.loads((p / "state.json").read_text())
        (p / "tokenizer.json").write_text("{}")
        from reference.packed import sha256_file
        s["files"]["tokenizer.json"] = sha256_file(p / "tokenizer.json")
        (p / "state.json").write_text(json.dumps(s))

    return {"truncated": (truncate, "sha256"), "bit flip": (flip, "sha256"),
            "no state.json": (drop_state, "state.json"),
            "bad json": (bad_json, "not valid JSON"), "missing layer": (other_model, "does not match its model config"),
            "shape": (wider_model, "has shape"), "missing file": (no_optimizer, "missing"),
            "bad tokenizer": (bad_tokenizer, "tokenizer")}


@pytest.mark.parametrize("case", list(_corrupt_cases()))
def test_broken_checkpoints_raise_one_clear_input_error(tmp_path, tokenizer_file, case):
    path, _ = _save(tmp_path, 3, tokenizer_file)
    damage, msg = _corrupt_cases()[case]
    damage(path)
    with pytest.raises(InputError, match=msg):
        ck.load_for_inference(path)


def test_truncated_file_without_hash_check_still_gives_input_error(tmp_path, tokenizer_file):
    path, _ = _save(tmp_path, 3, tokenizer_file)
    f = path / "model.safetensors"
    f.write_bytes(f.read_bytes()[:100])
    c = ck.read_checkpoint(path, verify=False)
    with pytest.raises(InputError, match="truncated or corrupt"):
        c.weights()


def test_missing_paths(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        ck.load_for_inference(tmp_path / "nope")
    with pytest.raises(InputError, match="holds no checkpoint"):
        ck.load_for_inference(tmp_path)


def test_injected_enospc_keeps_previous_checkpoint(tmp_path, tokenizer_file, monkeypatch):
    prev, _ = _save(tmp_path, 1, tokenizer_file)
    monkeypatch.setattr(ck, "_saves_in_process", 0)
    monkeypatch.setenv("HARNESS_FAULT", "ckpt_enospc:1")
    with pytest.raises(ck.CheckpointWriteError, match="no space left on device.*ckpt-00000001 is intact"):
        _save(tmp_path, 2, tokenizer_file)
    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [1] and not list(tmp_path.glob(".tmp-*"))
    ck.load_for_inference(tmp_path)


def _can_mount_tmpfs(d: Path) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    d.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(d)],
                          capture_output=True).returncode == 0


def test_real_full_disk_keeps_previous_checkpoint(tmp_path, tokenizer_file):
    mnt = tmp_path / "small-disk"
    if not _can_mount_tmpfs(mnt):
        pytest.skip("needs root and a mountable tmpfs to fill a real disk")
    try:
        prev, _ = _save(mnt, 1, tokenizer_file, keep=5)  # ~0.4 MB of the 0.6 MB disk
        with pytest.raises(ck.CheckpointWriteError, match="no space left on device"):
            _save(mnt, 2, tokenizer_file, keep=5)
        assert [s for s, _ in ck.list_checkpoints(mnt)] == [1] and not list(mnt.glob(".tmp-*"))
        ck.load_for_inference(mnt)
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_sigkill_during_checkpoint_write_leaves_previous_intact(tmp_path, tokenizer_file):
    """A child process saves step 1, then step 2 sleeping between its files; SIGKILL lands mid-write."""
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        import test_checkpoint as t
        t._save(Path({str(tmp_path)!r}), 1, Path({str(tokenizer_file)!r}))
        import os; os.environ["HARNESS_FAULT"] = "ckpt_sleep:60"
        t._save(Path({str(tmp_path)!r}), 2, Path({str(tokenizer_file)!r}))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env=preload_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 90
    while time.time() < deadline and not list(tmp_path.glob(".tmp-ckpt-00000002-*/model.safetensors")):
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    assert list(tmp_path.glob(".tmp-ckpt-00000002-*")), "the second save never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [1]
    model, _, info = ck.load_for_inference(tmp_path)
    assert info["step"] == 1
    ck.prune(tmp_path, 3)  # the next save clears what the killed one left
    assert not list(tmp_path.glob(".tmp-*"))
