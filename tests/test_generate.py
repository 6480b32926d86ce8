"""reference.generate and `harness generate` on tiny random models (d_model 32, vocab <= 300)."""
from __future__ import annotations

import io
import json

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten
from scipy import stats

from reference.config import ModelConfig
from reference.errors import InputError
from reference.generate import (complete, complete_detailed, cut_at_stop, encode_prompt, eos_ids,
                                generate_tokens, sample_next)
from reference.model import GPT, randomize

BASH = ["#!/bin/bash\necho hello world\n", "for f in *.txt; do\n  wc -l \"$f\"\ndone\n",
        "if [ -z \"$1\" ]; then\n  echo usage >&2\n  exit 1\nfi\n", "grep -rn TODO . | sort | uniq -c\n"]


def random_model(vocab=64, d=32, layers=2, heads=4, ctx=96, seed=0, scale=0.5, tie=True) -> GPT:
    """Weights (biases and LayerNorm parameters included) drawn far from their init values, so the
    logits are peaked and every parameter matters."""
    cfg = ModelConfig(vocab_size=vocab, d_model=d, n_layers=layers, n_heads=heads, d_ff=2 * d, max_seq_len=ctx,
                      dropout=0.1, tie_embeddings=tie)
    return randomize(GPT(cfg), seed, scale)


@pytest.fixture(scope="module")
def model():
    return random_model()


@pytest.fixture(scope="module")
def tokenizer():
    from reference.tokenizer import train_tokenizer

    return train_tokenizer(BASH * 20, 300, min_frequency=1)


@pytest.fixture(scope="module")
def text_model(tokenizer):
    return random_model(vocab=tokenizer.get_vocab_size(), ctx=128, seed=1, scale=0.3)


# --- token level ------------------------------------------------------------------------------------

@pytest.mark.parametrize("plen,n", [(1, 1), (7, 1), (30, 3)])
def test_greedy_with_cache_equals_without(model, plen, n):
    prompt = [int(t) for t in np.random.default_rng(plen).integers(0, 64, plen)]
    a = generate_tokens(model, prompt, n=n, max_tokens=40)
    b = generate_tokens(model, prompt, n=n, max_tokens=40, use_cache=False)
    assert a.tokens == b.tokens
    assert all(len(t) == 40 for t in a.tokens) and all(t == a.tokens[0] for t in a.tokens)


def test_greedy_equals_argmax_of_full_forward(model):
    r = generate_tokens(model, [3, 1, 4], max_tokens=12)
    seq = [3, 1, 4]
    for _ in range(12):
        seq.append(int(mx.argmax(model(mx.array([seq]))[0, -1]).item()))
    assert r.tokens[0] == seq[3:]


def test_cache_grows_past_its_chunk():
    m = random_model(ctx=300, seed=2)
    m_prompt = list(range(1, 64)) * 4  # 252 tokens: decoding crosses the 256-position chunk of KVCache
    a = generate_tokens(m, m_prompt, max_tokens=30)
    b = generate_tokens(m, m_prompt, max_tokens=30, use_cache=False)
    assert a.tokens == b.tokens and len(a.tokens[0]) == 30


def test_sampled_batch_shrinks_consistently(model):
    """Rows ending at different times stay in the batch, ignored from then on. Same seed, same keys: the
    cached and uncached paths draw the same tokens."""
    kw = dict(n=6, max_tokens=40, temperature=1.0, seed=7, stop_ids=[0, 1, 2, 3, 5])
    a = generate_tokens(model, [9, 8, 7], **kw)
    b = generate_tokens(model, [9, 8, 7], use_cache=False, **kw)
    assert a.tokens == b.tokens
    assert len({len(t) for t in a.tokens}) > 1, "rows should finish at different steps"
    assert not any(t in kw["stop_ids"] for row in a.tokens for t in row)


def test_seeded_sampling_is_reproducible(model):
    kw = dict(n=4, max_tokens=30, temperature=0.9, top_p=0.95, top_k=20)
    a = generate_tokens(model, [1, 2], seed=11, **kw).tokens
    assert a == generate_tokens(model, [1, 2], seed=11, **kw).tokens
    assert a != generate_tokens(model, [1, 2], seed=12, **kw).tokens
    assert len({tuple(t) for t in a}) > 1, "the n samples of one prompt should differ"


@pytest.mark.parametrize("kw", [dict(temperature=1.0, top_k=1), dict(temperature=5.0, top_p=1e-6)])
def test_top_k_1_and_tiny_top_p_are_greedy(model, kw):
    greedy = generate_tokens(model, [5, 6, 7], max_tokens=25).tokens
    assert generate_tokens(model, [5, 6, 7], max_tokens=25, seed=3, **kw).tokens == greedy


def _freqs(logits, n=20000, **kw):
    x = mx.broadcast_to(mx.array(logits, dtype=mx.float32), (n, len(logits)))
    s = np.array(sample_next(x, key=mx.random.key(0), **kw))
    return np.bincount(s, minlength=len(logits))


def _probs(z):
    e = np.exp(z - np.max(z))
    return e / e.sum()


LOGITS = np.array([2.0, 1.5, 1.0, 0.3, -0.5, -1.0, -3.0])


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_temperature_sampling_matches_softmax(temperature):
    f = _freqs(LOGITS, temperature=temperature)
    assert stats.chisquare(f, f.sum() * _probs(LOGITS / temperature)).pvalue > 1e-4


def test_top_k_keeps_k_and_renormalises():
    f = _freqs(LOGITS, temperature=1.0, top_k=3)
    assert f[3:].sum() == 0
    assert stats.chisquare(f[:3], f.sum() * _probs(LOGITS[:3])).pvalue > 1e-4


def test_top_p_keeps_smallest_prefix_reaching_p():
    p = _probs(LOGITS)
    top_p = float(p[:2].sum() + p[2] / 2)  # needs the third token to reach it, not the fourth
    f = _freqs(LOGITS, temperature=1.0, top_p=top_p)
    assert f[3:].sum() == 0 and (f[:3] > 0).all()
    assert stats.chisquare(f[:3], f.sum() * _probs(LOGITS[:3])).pvalue > 1e-4
    f = _freqs(LOGITS, temperature=1.0, top_k=2, top_p=0.99)  # top-p after top-k, on renormalised mass
    assert f[2:].sum() == 0 and (f[:2] > 0).all()


def test_stop_ids_end_a_row_and_are_not_returned(model):
    full = generate_tokens(model, [4, 4], max_tokens=30).tokens[0]
    stop = full[6]
    r = generate_tokens(model, [4, 4], max_tokens=30, stop_ids=[stop])
    assert r.tokens[0] == full[:full.index(stop)]


def test_stop_fn_keeps_the_triggering_token(model):
    full = generate_tokens(model, [2], max_tokens=30).tokens[0]
    r = generate_tokens(model, [2], max_tokens=30, stop_fn=lambda toks: len(toks) >= 9)
    assert r.tokens[0] == full[:9]


def test_context_limit(model):
    ctx = model.config.max_seq_len
    r = generate_tokens(model, [1] * (ctx - 3), max_tokens=10)
    assert len(r.tokens[0]) == 3 and r.hit_context_limit
    with pytest.raises(InputError, match="context"):
        generate_tokens(model, [1] * ctx, max_tokens=10)
    r = generate_tokens(model, list(range(ctx + 20)), max_tokens=10, truncate_prompt=True)
    assert r.prompt_tokens == ctx - 10 and r.prompt_truncated == 30 and len(r.tokens[0]) == 10
    r = generate_tokens(model, [1] * 20, max_tokens=ctx, truncate_prompt=True)  # short prompt: nothing to drop
    assert r.prompt_truncated == 0 and len(r.tokens[0]) == ctx - 20
    with pytest.raises(InputError, match="empty"):
        generate_tokens(model, [], max_tokens=3)
    with pytest.raises(InputError, match="top_p"):
        generate_tokens(model, [1], top_p=0.0)


def test_timings_are_reported(model):
    r = generate_tokens(model, [1, 2, 3], n=2, max_tokens=20)
    assert 0 < r.first_token_s <= r.total_s and r.decode_tokens_per_s > 0
    assert r.generated_tokens == 40 and r.prompt_tokens == 3


def test_generation_leaves_training_mode_alone():
    m = random_model()
    m.train()
    generate_tokens(m, [1], max_tokens=3)
    assert m.training


# --- text level -------------------------------------------------------------------------------------

def test_cut_at_stop():
    assert cut_at_stop("echo a\n}\nfoo", ["\n}", "\nfoo"]) == "echo a"
    assert cut_at_stop("abc", ["x", ""]) == "abc"
    assert cut_at_stop("a\n#x\n}", ["\n}", "\n#"]) == "a"


def test_prompt_starts_a_document(tokenizer):
    eos = tokenizer.token_to_id("<EOS>")
    ids = encode_prompt(tokenizer, "echo <EOS>\n")
    assert ids[0] == eos and eos not in ids[1:], "a literal '<EOS>' in the prompt is text, not the special id"
    assert tokenizer.decode(ids[1:]) == "echo <EOS>\n"
    assert encode_prompt(tokenizer, "echo", start_of_text=False)[0] != eos


def test_complete_cuts_at_stop_strings(text_model, tokenizer):
    prompt = "#!/bin/bash\n"
    free = complete(text_model, tokenizer, prompt, max_tokens=40)[0]
    assert len(free) > 8, "greedy text too short to pick a stop string"
    stop = free[5:8]
    got = complete_detailed(text_model, tokenizer, prompt, max_tokens=40, stop=[stop, "\0never"])
    assert got.texts[0] == free[:free.find(stop)]
    assert got.result.generated_tokens < 40, "decoding should end once a stop string appears"


def test_complete_stops_at_end_of_text(tokenizer):
    eot = tokenizer.token_to_id("<EOS>")
    assert eos_ids(tokenizer) == [eot]
    m = random_model(vocab=tokenizer.get_vocab_size(), ctx=64, seed=5)
    # ln_f output = bias = wte[eot] whatever the input, and with the tied head logit_j = <wte_j, wte[eot]>,
    # largest at eot once its row is long: a model that always ends the text.
    m.wte.weight[eot] = m.wte.weight[eot] * 20
    m.ln_f.weight = mx.zeros_like(m.ln_f.weight)
    m.ln_f.bias = m.wte.weight[eot]
    mx.eval(m.parameters())
    assert generate_tokens(m, [5, 6], max_tokens=4).tokens == [[eot] * 4]
    c = complete_detailed(m, tokenizer, "echo ", n=2, max_tokens=20)
    assert c.texts == ["", ""] and c.result.generated_tokens == 0


def test_sample_tasks_with_the_reference_model(text_model, tokenizer):
    from harness.models import Sampling, sample_tasks
    from harness.models.reference import ReferenceBackend

    backend = ReferenceBackend.in_memory(text_model, tokenizer)
    prompts = ["echo ", "for f in "]
    a = sample_tasks(backend, prompts, n=5, sampling=Sampling(12, 0.8, 0, 0.95), stops=[["\n"], ["done"]], seed=3,
                     batch_size=2)
    assert [len(x) for x in a] == [5, 5]
    assert all("\n" not in s for s in a[0]) and all("done" not in s for s in a[1])
    b = sample_tasks(backend, prompts, n=5, sampling=Sampling(12, 0.8, 0, 0.95), stops=[["\n"], ["done"]], seed=3,
                     batch_size=2)
    assert a == b


# --- the command line -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, text_model, tokenizer):
    from reference.checkpoint import save_checkpoint

    d = tmp_path_factory.mktemp("run")
    tok_file = d / "tokenizer.src.json"
    tokenizer.save(str(tok_file))
    save_checkpoint(d / "run", 1, weights=dict(tree_flatten(text_model.parameters())), optimizer={},
                    state={"model_config": text_model.config.to_dict(), "stage": "pretrain"},
                    tokenizer_file=tok_file)
    return d / "run"


def cli(argv, capsys, stdin=None, monkeypatch=None):
    from harness.cli import main

    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    rc = main(["generate", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_prompt_prints_the_greedy_completion(ckpt, text_model, tokenizer, capsys, tmp_path):
    rc, out, err = cli(["--checkpoint", str(ckpt), "--prompt", "#!/bin/bash\n", "--max-tokens", "16",
                        "--seed", "0", "--report", str(tmp_path / "g.json")], capsys)
    assert rc == 0, err
    want = complete(text_model, tokenizer, "#!/bin/bash\n", max_tokens=16)[0]
    assert out == want + ("" if want.endswith("\n") else "\n")
    assert "tokens/s" in err and "first token" in err
    from harness.report import get_metric, load_report

    rep = load_report(tmp_path / "g.json")
    assert rep["kind"] == "generate"
    assert get_metric(rep, "gen.tokens_per_s")["value"] > 0 and get_metric(rep, "gen.first_token_s")["value"] > 0


def test_cli_batch_jsonl_and_multipl_e(ckpt, capsys, tmp_path):
    jl = tmp_path / "p.jsonl"
    jl.write_text("".join(json.dumps({"task_id": f"t/{i}", "prompt": p}) + "\n" for i, p in enumerate(BASH[:3])))
    out = tmp_path / "s.jsonl"
    rc, _, err = cli(["--checkpoint", str(ckpt), "--prompts", str(jl), "--n", "3", "--batch-size", "2",
                      "--max-tokens", "8", "--seed", "1", "--out", str(out)], capsys)
    assert rc == 0, err
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    assert [r["task_id"] for r in rows] == [f"t/{i}" for i in range(3) for _ in range(3)]
    assert all(set(r) == {"task_id", "completion"} for r in rows)

    txt = tmp_path / "p.txt"
    txt.write_text("echo \n\nfor f in \n")
    rc, stdout, err = cli(["--checkpoint", str(ckpt), "--prompts", str(txt), "--max-tokens", "4"], capsys)
    assert rc == 0, err
    assert [json.loads(l)["task_id"] for l in stdout.splitlines()] == ["p/0", "p/1"]

    mp = tmp_path / "humaneval-sh.json"
    mp.write_text(json.dumps([{"name": "HumanEval_0_x", "language": "sh", "prompt": "#!/bin/bash\nf() {\n",
                               "tests": "", "stop_tokens": ["\n}"]}]))
    rc, stdout, err = cli(["--checkpoint", str(ckpt), "--prompts", str(mp), "--n", "2", "--max-tokens", "24",
                           "--seed", "2", "--temperature", "1.0"], capsys)
    assert rc == 0, err
    rows = [json.loads(l) for l in stdout.splitlines()]
    assert len(rows) == 2 and all(r["task_id"] == "HumanEval_0_x" and "\n}" not in r["completion"] for r in rows)


def test_cli_task_directory(ckpt, capsys, tmp_path):
    from harness.eval.tasks import load_suite

    suite = load_suite()  # fixtures/tasks
    rc, stdout, err = cli(["--checkpoint", str(ckpt), "--prompts", suite.source, "--max-tokens", "2",
                           "--truncate-prompt", "--out", str(tmp_path / "s.jsonl")], capsys)
    assert rc == 0, err
    ids = [json.loads(l)["task_id"] for l in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert ids == [t.task_id for t in suite.tasks]


def test_cli_interactive_reads_until_blank_line(ckpt, capsys, monkeypatch, text_model, tokenizer):
    rc, out, err = cli(["--checkpoint", str(ckpt), "--interactive", "--max-tokens", "6"], capsys,
                       stdin="echo \nfor f in \n\nignored\n", monkeypatch=monkeypatch)
    assert rc == 0, err
    a, b = (complete(text_model, tokenizer, p, max_tokens=6)[0] for p in ("echo ", "for f in "))
    assert out == f"{a}\n{b}\n"


@pytest.mark.parametrize("setup,argv,msg", [
    (None, ["--checkpoint", "/nonexistent/run", "--prompt", "x"], "does not exist"),
    ("", ["--prompts", "{p}"], "holds no prompts"),
    (None, ["--prompt", "echo " * 200], "context"),
    (None, ["--prompt", "  "], "empty"),
    ("echo\n" + "echo " * 200 + "\n", ["--prompts", "{p}"], "task empty/1 has"),
])
def test_cli_bad_input_exits_2(ckpt, capsys, tmp_path, setup, argv, msg):
    p = tmp_path / "empty.txt"
    if setup is not None:
        p.write_text(setup)
    argv = [a.format(p=p) for a in argv]
    if "--checkpoint" not in argv:
        argv = ["--checkpoint", str(ckpt), *argv]
    rc, out, err = cli(argv, capsys)
    assert rc == 2 and msg in err and "Traceback" not in err and out == ""


def test_cli_truncate_prompt(ckpt, capsys):
    rc, out, err = cli(["--checkpoint", str(ckpt), "--prompt", "echo " * 200, "--max-tokens", "5",
                        "--truncate-prompt"], capsys)
    assert rc == 0 and "dropped from the left" in err


def test_console_script_end_to_end(ckpt, text_model, tokenizer):
    """The installed `harness` entry point (a fresh process, OpenBLAS re-exec included): completion on
    stdout, speed on stderr, exit 2 and one line for a missing checkpoint."""
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("harness")
    r = subprocess.run([str(exe), "generate", "--checkpoint", str(ckpt), "--prompt", "for f in ", "--max-tokens", "10"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    want = complete(text_model, tokenizer, "for f in ", max_tokens=10)[0]
    assert r.stdout == want + ("" if want.endswith("\n") else "\n") and "tokens/s" in r.stderr
    r = subprocess.run([str(exe), "generate", "--checkpoint", str(ckpt) + "-missing", "--prompt", "x"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "does not exist" in r.stderr
