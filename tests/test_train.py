"""The trainer and `harness train` on a tiny model (d_model 32, 2 layers, 32-token windows) over a small real
data directory (tests/train_fixtures.py): end to end, resume exactness, accumulation, bf16, compilation,
gradient checkpointing and the input errors of the command line."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten

from reference import checkpoint as ck
from reference.errors import InputError
from reference.model import build_model
from reference.runtime import preload_env
from reference.train import TrainConfig, make_loss_and_grad, make_optimizer, make_train_step
from reference.trainer import config_for_resume, train

sys.path.insert(0, str(Path(__file__).parent))
from train_fixtures import TINY_MODEL, make_data_dir, tiny_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data_dir(tmp_path_factory.mktemp("data"))


def harness(*args, env=None, timeout=300):
    e = preload_env()
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "harness.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=e, timeout=timeout)


def write_config(path: Path, **kw) -> Path:
    d = {"preset": "small", "model": dict(TINY_MODEL), "steps": 12, "batch_size": 4, "seq_len": 32, "lr": 3e-3,
         "warmup": 2, "eval_every": 6, "eval_batches": 4, "save_every": 6, "dropout": 0.0}
    d.update(kw)
    path.write_text(json.dumps(d))
    return path


def losses(run_dir: Path, key="loss") -> list[tuple[int, float]]:
    recs = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r[key]) for r in recs if key in r]


def test_pretrain_then_finetune_from_the_command_line(tmp_path, data):
    from harness.report import get_metric, load_report

    cfg = write_config(tmp_path / "tiny.json", steps=24, eval_every=12, save_every=12)
    pre, fin = tmp_path / "pre", tmp_path / "fin"
    r = harness("train", "--config", cfg, "--data", data, "--out", pre, "--no-progress")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    rep = load_report(pre / "report.json")
    assert rep["kind"] == "train" and rep["status"] == "ok" and summary["step"] == 24
    val = rep["details"]["val_losses"]
    assert [s for s, _ in val] == [0, 12, 24] and val[-1][1] < val[0][1] - 0.3
    for name in ("train.loss", "train.val_loss", "train.tokens_per_s", "train.step_time_s",
                 "train.peak_memory_bytes", "train.mfu"):
        assert get_metric(rep, name) is not None, name
    # timed: past the 2 warm-up steps, minus the steps that drain the queue (12, 24) and the one after (13)
    assert len(get_metric(rep, "train.tokens_per_s")["samples"]) == 24 - 2 - 3
    lo, hi = get_metric(rep, "train.tokens_per_s")["stats"]["ci95"]  # block bootstrap of the steps' median
    assert lo <= get_metric(rep, "train.tokens_per_s")["value"] <= hi
    assert get_metric(rep, "train.peak_memory_bytes")["value"] > 0
    assert rep["config"]["model_config"]["vocab_size"] == json.loads((data / "manifest.json").read_text())["vocab_size"]
    assert any("vocab_size" in n for n in rep["details"]["notes"])

    r = harness("train", "--config", cfg, "--data", data, "--out", fin, "--init", pre, "--steps", 12, "--no-progress")
    assert r.returncode == 0, r.stderr
    rep2 = load_report(fin / "report.json")
    assert rep2["config"]["stage"] == "finetune" and rep2["details"]["corpus"] == "bash"
    v2 = rep2["details"]["val_losses"]
    assert v2[-1][1] < v2[0][1]
    model, tok, info = ck.load_for_inference(fin)
    assert info["stage"] == "finetune" and info["step"] == 12
    assert json.loads((fin / "ckpt-00000012" / "state.json").read_text())["init_from"].endswith("ckpt-00000024")


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, data):
    """8 steps straight vs 4 steps then --resume to 8, with dropout on (RNG state) and the schedule's
    horizon fixed at 8: every per-step loss and gradient norm is equal bit for bit (fp32, CPU)."""
    cfg = tiny_config(steps=8, decay_steps=8, dropout=0.1, save_every=2, eval_every=3)
    train(cfg, data, tmp_path / "a", progress=False)
    train(cfg.with_(steps=4), data, tmp_path / "b", progress=False)
    cfg_b = config_for_resume(tmp_path / "b", {"steps": 8})
    assert cfg_b == cfg
    res = train(cfg_b, data, tmp_path / "b", resume=True, progress=False)
    assert res.start_step == 4 and [s for s, _ in res.losses] == [5, 6, 7, 8]
    for key in ("loss", "grad_norm"):
        a, b = losses(tmp_path / "a", key), losses(tmp_path / "b", key)
        assert a == b and len(a) == 8, key
    # the shorter run also validated at its last step (4); every validation of the straight run is replayed
    va, vb = losses(tmp_path / "a", "val_loss"), losses(tmp_path / "b", "val_loss")
    assert set(va) <= set(vb) and [s for s, _ in vb] == [0, 3, 4, 6, 8]
    wa = ck.read_checkpoint(tmp_path / "a").weights()
    wb = ck.read_checkpoint(tmp_path / "b").weights()
    assert all(mx.array_equal(wa[k], wb[k]).item() for k in wa)


def _batches(seed, n_rows, vocab, T=32):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, vocab, (n_rows, T + 1)).astype(np.int32)
    return mx.array(x[:, :-1]), mx.array(x[:, 1:])


def _one_step(cfg: TrainConfig, batches, vocab=384):
    model = build_model(cfg.model_config(vocab), seed=1)
    opt = make_optimizer(cfg)
    step = make_train_step(model, opt, cfg)
    loss, norm = step(batches)
    mx.eval(step.state, loss, norm)
    return loss.item(), norm.item(), dict(tree_flatten(model.parameters()))


@pytest.mark.parametrize("k", [2, 4])
def test_accumulating_k_micro_batches_equals_one_k_times_batch(k):
    x, y = _batches(0, 8, 384)
    # eps 1e-3: see suites/properties/test_training_props.py (Adam turns rounding noise of ~0 gradients
    # into steps of ~lr with the default 1e-8)
    big = _one_step(tiny_config(accum=1, batch_size=8, compile=False, eps=1e-3), [(x, y)])
    b = 8 // k
    micro = [(x[i * b:(i + 1) * b], y[i * b:(i + 1) * b]) for i in range(k)]
    acc = _one_step(tiny_config(accum=k, batch_size=b, compile=False, eps=1e-3), micro)
    assert acc[0] == pytest.approx(big[0], rel=1e-6)
    assert acc[1] == pytest.approx(big[1], rel=1e-5)
    for name, w in big[2].items():
        np.testing.assert_allclose(np.array(acc[2][name]), np.array(w), rtol=1e-5, atol=1e-6, err_msg=name)


def test_compiled_step_equals_eager_step(tmp_path, data):
    for name, comp in (("c", True), ("e", False)):
        train(tiny_config(steps=4, accum=2, compile=comp), data, tmp_path / name, progress=False)
    a, b = losses(tmp_path / "c"), losses(tmp_path / "e")
    np.testing.assert_allclose([v for _, v in a], [v for _, v in b], rtol=1e-6)


def test_bf16_trains_with_fp32_master_weights(tmp_path, data):
    r32 = train(tiny_config(steps=6, compile=False), data, tmp_path / "f32", progress=False)
    r16 = train(tiny_config(steps=6, compile=False, dtype="bfloat16"), data, tmp_path / "bf16", progress=False)
    l32, l16 = [v for _, v in r32.losses], [v for _, v in r16.losses]
    assert all(np.isfinite(l16)) and l16[-1] < l16[0]
    np.testing.assert_allclose(l16, l32, rtol=2e-2)  # bf16 keeps ~3 significant digits
    w = ck.read_checkpoint(tmp_path / "bf16").weights()
    assert all(v.dtype == mx.float32 for v in w.values())


def test_gradient_checkpointing_gives_the_same_gradients():
    cfg = tiny_config()
    x, y = _batches(1, 4, 384)
    out = []
    for on in (False, True):
        model = build_model(cfg.model_config(384), seed=2)
        model.train()
        model.checkpoint_blocks = on
        loss, grads = make_loss_and_grad(model, "float32")(x, y)
        out.append((loss.item(), dict(tree_flatten(grads))))
    assert out[0][0] == pytest.approx(out[1][0], rel=1e-6)
    for name, g in out[0][1].items():
        np.testing.assert_allclose(np.array(out[1][1][name]), np.array(g), rtol=1e-4, atol=1e-6, err_msg=name)


def test_refuses_an_out_dir_with_checkpoints_unless_resume_or_force(tmp_path, data):
    cfg = write_config(tmp_path / "c.json", steps=2, save_every=1)
    out = tmp_path / "run"
    r = harness("train", "--config", cfg, "--data", data, "--out", out, "--no-progress", "--no-compile")
    assert r.returncode == 0, r.stderr
    r = harness("train", "--config", cfg, "--data", data, "--out", out, "--no-progress")
    assert r.returncode == 2 and "already holds checkpoints" in r.stderr and "Traceback" not in r.stderr
    r = harness("train", "--config", cfg, "--data", data, "--out", out, "--no-progress", "--no-compile", "--force")
    assert r.returncode == 0, r.stderr
    r = harness("train", "--data", data, "--out", tmp_path / "empty", "--resume")
    assert r.returncode == 2 and "no checkpoint to resume" in r.stderr
    r = harness("train", "--data", data, "--out", out, "--resume", "--steps", 2)
    assert r.returncode == 2 and "already at step 2" in r.stderr


def test_tokenizer_mismatch_names_both_hashes(tmp_path, data):
    other = make_data_dir(tmp_path / "other", vocab_size=320, bash_docs=120)
    cfg = write_config(tmp_path / "c.json", steps=2, save_every=2)
    assert harness("train", "--config", cfg, "--data", data, "--out", tmp_path / "pre", "--no-progress",
                   "--no-compile").returncode == 0
    sha_a = json.loads((data / "manifest.json").read_text())["tokenizer"]["sha256"]
    sha_b = json.loads((other / "manifest.json").read_text())["tokenizer"]["sha256"]
    for extra in (["--init", tmp_path / "pre", "--out", tmp_path / "fin"], ["--resume", "--out", tmp_path / "pre"]):
        r = harness("train", "--config", cfg, "--data", other, "--steps", 4, "--no-progress", *extra)
        assert r.returncode == 2 and sha_a in r.stderr and sha_b in r.stderr, r.stderr


def test_token_file_shorter_than_one_sequence(tmp_path, data):
    import shutil

    d = tmp_path / "short"
    shutil.copytree(data, d)
    m = json.loads((d / "manifest.json").read_text())
    np.arange(10, dtype=np.uint16).tofile(d / "bash" / "train.bin")
    m["corpora"]["bash"]["train"]["tokens"] = 10
    (d / "manifest.json").write_text(json.dumps(m))
    cfg = write_config(tmp_path / "c.json", steps=2, stage="pretrain", corpus="bash")
    r = harness("train", "--config", cfg, "--data", d, "--out", tmp_path / "run", "--no-progress")
    assert r.returncode == 2 and "fewer than one sequence" in r.stderr and "Traceback" not in r.stderr


def _args(**kw):
    base = dict(config=None, data="d", out="o", resume=False, init=None)
    from reference.train import TrainConfig as T

    base.update({k: None for k in T.__dataclass_fields__ if k not in ("preset", "model")})
    base.update(kw)
    return argparse.Namespace(**base)


def test_config_resolution(tmp_path):
    from harness.commands.train import build_config
    from harness.errors import UsageError

    assert build_config(_args(config="small")).preset == "small"
    c = build_config(_args(config="pretrain-small", lr=0.5))
    assert c.lr == 0.5 and c.stage == "pretrain" and c.seq_len == 128  # the file, then the flag
    assert build_config(_args(config="finetune-small", init="x")).stage == "finetune"
    assert build_config(_args(config="small", init="x")).stage == "finetune"
    assert build_config(_args(config="small", init="x", stage="pretrain")).stage == "pretrain"
    f = write_config(tmp_path / "f.json", lr=0.25)
    assert build_config(_args(config=str(f))).lr == 0.25
    with pytest.raises(UsageError, match="neither a file, a preset"):
        build_config(_args(config="no-such-config"))
    (tmp_path / "bad.json").write_text(json.dumps({"preset": "small", "learning_rate": 1}))
    with pytest.raises(InputError, match="unknown training settings"):
        build_config(_args(config=str(tmp_path / "bad.json")))
    with pytest.raises(UsageError, match="--config"):
        build_config(_args())
    for name in ("pretrain-small", "finetune-small"):
        TrainConfig.from_dict({k: v for k, v in json.loads((ROOT / "configs" / f"{name}.json").read_text()).items()
                               if k != "description"})


def test_memory_limit_is_validated_applied_and_restored(tmp_path):
    import mlx.core as mx

    from reference.errors import InputError
    from reference.train import TrainConfig, memory_limit

    with pytest.raises(InputError, match="memory_limit_gb"):
        TrainConfig(memory_limit_gb=0)
    before = mx.set_memory_limit(2 ** 40)
    mx.set_memory_limit(before)
    try:
        with memory_limit(TrainConfig()):
            assert mx.set_memory_limit(before) == before  # nothing set
        with memory_limit(TrainConfig(memory_limit_gb=1.5)):
            inside = mx.set_memory_limit(int(1.5 * 2 ** 30))
        assert inside == int(1.5 * 2 ** 30)  # what the config set
        assert mx.set_memory_limit(before) == before  # put back after the block
    finally:
        mx.set_memory_limit(before)


def test_a_run_with_a_memory_limit_trains_the_same_and_restores_the_limit(tmp_path, data):
    before = mx.set_memory_limit(2 ** 40)
    mx.set_memory_limit(before)
    a = train(tiny_config(steps=3), data, tmp_path / "a", progress=False)
    b = train(tiny_config(steps=3, memory_limit_gb=0.5), data, tmp_path / "b", progress=False)
    assert [x for _, x in b.losses] == pytest.approx([x for _, x in a.losses], rel=1e-6)
    assert mx.set_memory_limit(before) == before  # the run's limit was undone
    assert b.config.memory_limit_gb == 0.5
