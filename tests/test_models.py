"""`harness export` (a checkpoint as a Hugging Face GPT-2 folder) checked against transformers and mlx-lm, and
`--model DIR` (mlx-lm's loader) for generate and eval, on tiny models built in the test."""
from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pytest

import model_fixtures as mf
from harness.cli import main
from harness.report import load_report, validate

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return mf.reference_checkpoint(tmp_path_factory.mktemp("ref"))


@pytest.fixture(scope="module")
def exported(ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf") / "gpt2"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def qwen2(tmp_path_factory):
    pytest.importorskip("transformers")
    return mf.qwen2_folder(tmp_path_factory.mktemp("qwen2") / "qwen2")


def test_export_loads_in_transformers_with_the_same_ids_logits_and_greedy_tokens(ckpt, exported, capsys):
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import mlx.core as mx
    from reference.checkpoint import load_for_inference
    from reference.generate import encode_prompt

    model, tok, _ = load_for_inference(ckpt)
    hf = AutoModelForCausalLM.from_pretrained(exported).eval()
    ht = AutoTokenizer.from_pretrained(exported)
    cfg = json.loads((exported / "config.json").read_text())
    assert cfg["model_type"] == "gpt2" and cfg["activation_function"] == "gelu"
    prompt = "#!/bin/bash\n# prints <EOS> literally\nfor f in"
    ids = ht(prompt)["input_ids"]
    assert ids == encode_prompt(tok, prompt) and ids[0] == tok.token_to_id("<EOS>")
    ours = np.array(model(mx.array([ids])))
    with torch.no_grad():
        theirs = hf(torch.tensor([ids])).logits.numpy()
    assert np.abs(ours - theirs).max() <= 1e-5 * np.abs(ours).max()
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(ckpt), "--prompt", prompt, "--max-tokens", "8"]) == 0
    printed = capsys.readouterr().out
    g = hf.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False)
    want = ht.decode(g[0][len(ids):], skip_special_tokens=True)
    assert printed == want + ("" if want.endswith("\n") else "\n")


def test_export_loads_in_mlx_lm(ckpt, exported, tmp_path):
    import mlx.core as mx
    from harness.models.mlxlm import MlxLmBackend
    from reference.checkpoint import load_for_inference

    model, _, _ = load_for_inference(ckpt)
    prompt = "for f in *.txt; do\n"
    for fmt, tol in (("gpt2", 3e-3), ("gpt_bigcode", 1e-5)):  # gpt2: mlx-lm's tanh GELU; gpt_bigcode: exact
        out = exported if fmt == "gpt2" else tmp_path / fmt
        if fmt != "gpt2":
            assert main(["export", "--checkpoint", str(ckpt), "--out", str(out), "--format", fmt]) == 0
        b = MlxLmBackend(str(out))
        ids = b.encode(prompt)
        ours, theirs = np.array(model(mx.array([ids]))), np.array(b.model(mx.array([ids])))
        assert np.abs(ours - theirs).max() <= tol * np.abs(ours).max(), fmt


@pytest.mark.parametrize("kw,msg", [({"tie": False}, "untied output head"), ({"d_ff": 96}, "d_ff=96")])
def test_export_refuses_what_mlx_lm_gpt2_cannot_hold(tmp_path, capsys, kw, msg):
    run = mf.reference_checkpoint(tmp_path / "r", **kw)
    assert main(["export", "--checkpoint", str(run), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert msg in err and "--format gpt_bigcode" in err
    assert main(["export", "--checkpoint", str(run), "--out", str(tmp_path / "o2"), "--format", "gpt_bigcode"]) == 0


def test_model_folder_generate_matches_mlx_lm(qwen2, capsys, tmp_path):
    from mlx_lm import generate, load

    prompt = "#!/bin/bash\necho"
    m, t = load(str(qwen2))
    want = generate(m, t, prompt, max_tokens=8)
    capsys.readouterr()
    rep = tmp_path / "g.json"
    assert main(["generate", "--model", str(qwen2), "--prompt", prompt, "--max-tokens", "8",
                 "--report", str(rep)]) == 0
    assert capsys.readouterr().out == want + ("" if want.endswith("\n") else "\n")
    r = load_report(rep)
    assert r["config"]["model"]["backend"] == "mlx-lm" and r["config"]["model"]["model_type"] == "qwen2"
    assert len(r["config"]["model"]["weights_sha256"]) == 64 and r["config"]["temperature"] == 0.0


def test_model_folder_sampling_is_seeded_and_cut_at_stops(qwen2, capsys, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"task_id": f"t/{i}", "prompt": p}) + "\n" for i, p in enumerate(mf.BASH)))
    runs = []
    for bs in ("4", "2"):
        out = tmp_path / f"s{bs}.jsonl"
        assert main(["generate", "--model", str(qwen2), "--prompts", str(prompts), "--n", "4", "--batch-size", bs,
                     "--max-tokens", "8", "--temperature", "1.0", "--top-k", "50", "--top-p", "0.9", "--seed", "3",
                     "--stop", "e", "--out", str(out)]) == 0
        runs.append([json.loads(l) for l in out.read_text().splitlines()])
    assert len(runs[0]) == 16 and all("e" not in s["completion"] for s in runs[0])
    assert len({s["completion"] for s in runs[0]}) > 1
    again = tmp_path / "again.jsonl"
    assert main(["generate", "--model", str(qwen2), "--prompts", str(prompts), "--n", "4", "--max-tokens", "8",
                 "--temperature", "1.0", "--top-k", "50", "--top-p", "0.9", "--seed", "3", "--stop", "e",
                 "--out", str(again)]) == 0
    assert [json.loads(l) for l in again.read_text().splitlines()] == runs[0]


@pytest.mark.sandbox
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_eval_model_folder_writes_a_full_report(qwen2, tmp_path, capsys):
    from test_eval_cli import make_suite

    suite = make_suite(tmp_path / "tasks")
    out = tmp_path / "r.json"
    assert main(["eval", "--model", str(qwen2), "--tasks", str(suite), "--n", "2", "--k", "1,2",
                 "--max-tokens", "8", "--out", str(out)]) == 0, capsys.readouterr().err
    r = load_report(out)
    validate(r)
    m = {x["name"]: x["value"] for x in r["metrics"]}
    assert m["eval.samples"] == 6 and m["eval.pass@1"] is not None
    c = r["config"]
    assert c["model"]["backend"] == "mlx-lm" and c["sampling"]["n"] == 2 and c["seed"] == 0
    assert len(c["samples_sha256"]) == 64


@pytest.mark.parametrize("setup,msg", [
    ("Qwen/Qwen2-0.5B", "no such local folder"),
    ("empty", "not a model folder"),
    ("bad", "mlx-lm cannot load"),
])
def test_model_bad_input_exits_2(tmp_path, capsys, setup, msg):
    path = setup
    if setup == "empty":
        path = str(tmp_path)
    elif setup == "bad":
        (tmp_path / "config.json").write_text(json.dumps({"model_type": "no_such_architecture"}))
        path = str(tmp_path)
    assert main(["generate", "--model", path, "--prompt", "echo", "--max-tokens", "2"]) == 2
    assert msg in capsys.readouterr().err


def test_tasks_export_jsonl(capsys):
    assert main(["tasks", "export", "--format", "jsonl"]) == 0
    lines = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert len(lines) == 138 and set(lines[0]) >= {"task_id", "prompt"}
