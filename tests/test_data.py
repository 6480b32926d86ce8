"""reference/data.py (split, pack, manifest) and `harness data` end to end on fixtures/corpora."""
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from harness.cli import main
from reference.data import Spool, assign_splits, pack_corpus, split_score, token_dtype, write_manifest
from reference.packed import load_manifest, open_split
from reference.textcorpus import TextDoc
from reference.tokenizer import encode, load_tokenizer, train_tokenizer

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "fixtures/corpora/scripts"
TEXT = ROOT / "fixtures/corpora/text"


@pytest.fixture(scope="module")
def docs():
    return [TextDoc(str(p), p.read_text()) for p in sorted(SCRIPTS.rglob("*")) if p.is_file()]


@pytest.fixture(scope="module")
def tok(docs):
    return train_tokenizer([d.text for d in docs], 300)


def test_assign_splits_fixups():
    assert assign_splits(np.array([0.5, 0.9, 0.3]), 0.05).tolist() == [False, False, True]  # lowest -> val
    assert assign_splits(np.array([0.01, 0.02]), 0.05).tolist() == [True, False]          # highest -> train
    assert assign_splits(np.array([0.01]), 0.05).tolist() == [False]
    assert assign_splits(np.array([0.5, 0.9]), 0.0).tolist() == [False, False]
    assert assign_splits(np.array([]), 0.05).tolist() == []


def test_split_score_depends_on_document_and_seed_only():
    assert split_score("echo a\n", 0) == split_score("echo a\n", 0) != split_score("echo a\n", 1)
    assert 0.0 <= split_score("", 0) < 1.0


def test_token_dtype():
    assert token_dtype(4096) == np.uint16 and token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32


def test_pack_invariants(tmp_path, tok, docs):
    entry = pack_corpus(tok, lambda: docs, tmp_path, "bash", val_fraction=0.3, seed=3)
    (tmp_path / "tokenizer.json").write_text(tok.to_str())
    write_manifest(tmp_path, tok, {"bash": entry})
    m = load_manifest(tmp_path)
    assert m["dtype"] == "uint16" and m["eos_id"] == 3
    recs = [json.loads(line) for line in (tmp_path / "bash/documents.jsonl").read_text().splitlines()]
    assert [r["source"] for r in recs] == [d.source for d in docs]
    for split in ("train", "val"):
        stream = open_split(tmp_path, "bash", split)
        mine = [(d, r) for d, r in zip(docs, recs) if r["split"] == split]
        assert entry[split]["documents"] == len(mine) >= 1
        expect = [i for d, _ in mine for i in encode(tok, d.text) + [3]]
        assert stream.tolist() == expect  # the stream minus EOS is the documents, in order, no padding
        assert int((stream == 3).sum()) == len(mine)
        for d, r in mine:
            assert stream[r["offset"]:r["offset"] + r["tokens"]].tolist() == encode(tok, d.text)
        assert entry[split]["bytes"] == sum(len(d.text.encode()) for d, _ in mine)
    assert entry["roundtrip"] == {"checked": len(docs), "failed": 0, "examples": []}


def test_spool_round_trips_text(tmp_path):
    texts = ["a\r\nb\n", "\u2028x\u0085y\x00", "<EOS>", ""]
    s = Spool(tmp_path / "s.jsonl").write(TextDoc(str(i), t) for i, t in enumerate(texts))
    assert [d.text for d in s()] == texts and s.documents == 4 and s.bytes == sum(len(t.encode()) for t in texts)


# ---- the command -----------------------------------------------------------------------------------------------

def _run(*argv):
    return main(["data", "--quiet", *map(str, argv)])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "out"
    assert _run("--scripts", SCRIPTS, "--text", TEXT, "--out", out, "--vocab-size", 300, "--workers", 2) == 0
    return out


def test_cli_writes_a_readable_data_dir(built, capsys):
    m = load_manifest(built)
    assert m["vocab_size"] == 300 and m["dtype"] == "uint16"
    assert set(m["corpora"]) == {"bash", "text"}
    f = m["corpora"]["bash"]["funnel"]
    assert (f["raw"], f["valid"], f["kept"]) == (13, 12, 9)
    assert m["corpora"]["text"]["funnel"]["kept"] == 6
    tok = Tokenizer.from_file(str(built / "tokenizer.json"))
    for corpus in ("bash", "text"):
        e = m["corpora"][corpus]
        assert e["roundtrip"]["failed"] == 0
        assert e["train"]["documents"] + e["val"]["documents"] == m["corpora"][corpus]["funnel"]["kept"]
        for split in ("train", "val"):
            assert len(open_split(built, corpus, split)) == e[split]["tokens"]
    bash = np.asarray(open_split(built, "bash", "train"))
    first = tok.decode(bash[:int(np.argmax(bash == 3))].tolist(), skip_special_tokens=False)
    assert first in {p.read_text() for p in SCRIPTS.rglob("*") if p.is_file()}
    assert not list(built.parent.glob(".out.*"))  # no staging left behind
    assert len((built / "bash/dropped.jsonl").read_text().splitlines()) == 4


def test_cli_is_deterministic(built, tmp_path):
    out = tmp_path / "again"
    assert _run("--scripts", SCRIPTS, "--text", TEXT, "--out", out, "--vocab-size", 300, "--workers", 1) == 0
    for rel in ("tokenizer.json", "bash/train.bin", "bash/val.bin", "text/train.bin", "text/val.bin"):
        assert (out / rel).read_bytes() == (built / rel).read_bytes(), rel


def test_cli_reuses_a_tokenizer(built, tmp_path):
    out = tmp_path / "ft"
    assert _run("--scripts", SCRIPTS, "--no-text", "--tokenizer", built, "--out", out) == 0
    m = load_manifest(out)
    assert set(m["corpora"]) == {"bash"}
    assert m["tokenizer"]["sha256"] == load_manifest(built)["tokenizer"]["sha256"]
    assert (out / "bash/train.bin").read_bytes() == (built / "bash/train.bin").read_bytes()
    assert load_tokenizer(out).get_vocab_size() == 300


def _snapshot(d: Path) -> dict:
    return {str(p.relative_to(d)): (p.read_bytes(), p.stat().st_mtime_ns) for p in d.rglob("*") if p.is_file()}


def test_existing_out_needs_force_and_is_untouched(built, tmp_path, capsys):
    before = _snapshot(built)
    assert _run("--scripts", SCRIPTS, "--no-text", "--out", built, "--vocab-size", 280) == 2
    assert "--force" in capsys.readouterr().err
    assert _snapshot(built) == before
    other = tmp_path / "precious"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    assert _run("--scripts", SCRIPTS, "--no-text", "--out", other, "--force") == 2
    assert "refusing" in capsys.readouterr().err and (other / "notes.txt").read_text() == "keep me"


def test_force_replaces_an_earlier_data_dir(tmp_path):
    out = tmp_path / "d"
    assert _run("--scripts", SCRIPTS, "--no-text", "--out", out, "--vocab-size", 280) == 0
    assert _run("--scripts", SCRIPTS, "--no-text", "--out", out, "--vocab-size", 290, "--force") == 0
    assert load_manifest(out)["vocab_size"] == 290 and sorted(os.listdir(tmp_path)) == ["d"]


@pytest.mark.parametrize("argv,message", [
    (["--scripts", "/nonexistent/dir"], "--scripts /nonexistent/dir does not exist"),
    (["--scripts", SCRIPTS, "--text", "/nonexistent.txt"], "--text /nonexistent.txt does not exist"),
    (["--scripts", TEXT, "--no-text"], "no usable shell scripts"),
    (["--scripts", SCRIPTS, "--vocab-size", 100000, "--no-text"], r"supports only \d+ tokens"),
    (["--scripts", SCRIPTS, "--vocab-size", 100, "--no-text"], "too small"),
    (["--scripts", SCRIPTS, "--val-fraction", 1.5, "--no-text"], "--val-fraction"),
    (["--scripts", SCRIPTS, "--text", SCRIPTS / "ldd", "--vocab-size", 280], None),  # a script is text too
])
def test_bad_input_exits_2_with_one_message(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    rc = _run(*argv, "--out", out)
    err = capsys.readouterr().err
    if message is None:
        assert rc == 0
        return
    assert rc == 2
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("harness data: error: ")
    assert re.search(message, err), err
    assert not out.exists() and os.listdir(tmp_path) == []  # nothing written, no staging left


def test_unusable_text_exits_2(tmp_path, capsys):
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01\x02" * 100)
    rc = _run("--scripts", SCRIPTS, "--text", tmp_path / "blob.bin", "--out", tmp_path / "o")
    assert rc == 2 and "no usable text" in capsys.readouterr().err


def test_sigterm_leaves_nothing_behind(tmp_path):
    import subprocess
    import sys
    import time

    from reference.runtime import preload_env

    big = tmp_path / "big.txt"
    with open(big, "w") as f:  # ~3 MB of real README text, so the run is still busy when the signal comes
        for i in range(500):
            f.write((TEXT / "gzip.README").read_text() + f"\n{i}\n<|endoftext|>\n")
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-m", "harness.cli", "data", "--quiet", "--scripts", str(SCRIPTS),
                          "--text", str(big), "--out", str(out), "--vocab-size", "300"], cwd=ROOT,
                         env=preload_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not list(tmp_path.glob(".out.partial-*")) and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    p.terminate()  # handled when control is back in Python (a long tokenizers call finishes first)
    rc = p.wait(timeout=120)
    assert rc == 143, p.stderr.read().decode()[-2000:]
    assert sorted(x.name for x in tmp_path.iterdir()) == ["big.txt"]
