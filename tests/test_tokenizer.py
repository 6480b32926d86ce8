"""reference/tokenizer.py: byte-level BPE that round-trips bash exactly."""
import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from reference.errors import InputError
from reference.tokenizer import (MIN_VOCAB, SPECIAL_TOKENS, decode, encode, encode_batch, load_tokenizer,
                                 roundtrips, save_tokenizer, special_ids, train_tokenizer)

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for p in (ROOT / "fixtures/corpora/scripts").rglob("*") if p.is_file())

TRICKY = [
    "",
    "\n",
    "#!/bin/bash\nset -euo pipefail\n",
    "cat <<'EOF' > /etc/motd\n  indented $HOME `date`\n\tTabbed\nEOF\n",
    "cat <<-EOF\n\t\tstripped tabs\n\tEOF\n",
    "if [ -f x ]; then\r\n  echo crlf\r\nfi\r\n",
    "echo 'caf\u00e9 na\u00efve \u65e5\u672c\u8a9e' \U0001F600 \U0001F468\u200D\U0001F469\u200D\U0001F467\n",
    "printf 'a\\x00b' # NUL below\n\x00\x01\x7f\n",
    "   leading spaces\n\n\n\ttrailing tab\t\n    ",
    "echo <EOS> <PAD> <BOS> <UNK>\n",
    "e\u0301 combining, \u2028 line sep, \ufeff BOM, \u00a0 nbsp\n",
    "x" * 5000,
]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer([p.read_text() for p in SCRIPTS], 400)


def test_specials_take_the_first_ids(tok):
    assert special_ids(tok) == {"pad": 0, "unk": 1, "bos": 2, "eos": 3}
    assert [tok.id_to_token(i) for i in range(4)] == list(SPECIAL_TOKENS)
    assert tok.get_vocab_size() == 400


@pytest.mark.parametrize("text", TRICKY, ids=range(len(TRICKY)))
def test_tricky_strings_round_trip(tok, text):
    ids = encode(tok, text)
    assert decode(tok, ids) == text


def test_every_fixture_script_round_trips(tok):
    for p in SCRIPTS:
        assert roundtrips(tok, p.read_text(encoding="utf-8")), p


def test_special_token_strings_in_text_are_plain_text(tok):
    ids = encode(tok, "exit <EOS>")
    assert not set(ids) & set(special_ids(tok).values())
    assert decode(tok, ids) == "exit <EOS>"


def test_decode_keeps_special_ids_visible(tok):
    eos = special_ids(tok)["eos"]
    assert decode(tok, encode(tok, "ls\n") + [eos]) == "ls\n<EOS>"


def test_batch_matches_single(tok):
    texts = [t for t in TRICKY if t]
    assert encode_batch(tok, texts) == [encode(tok, t) for t in texts]


def test_merges_learned_from_bash(tok):
    # a trained BPE shortens bash: fewer tokens than bytes on a real script
    text = (ROOT / "fixtures/corpora/scripts/zgrep").read_text()
    assert len(encode(tok, text)) < 0.8 * len(text.encode())


def test_saved_file_is_standard_and_reloads(tok, tmp_path):
    path = save_tokenizer(tok, tmp_path / "tokenizer.json")
    plain = Tokenizer.from_file(str(path))  # any HF tokenizers user can load it
    text = "for f in *.sh; do\n\tbash -n \"$f\"\ndone\n"
    assert plain.decode(plain.encode(text).ids) == text
    again = load_tokenizer(tmp_path)  # a data directory works too
    assert encode(again, text) == encode(tok, text)


def test_vocab_out_of_range(tmp_path):
    with pytest.raises(InputError, match="at least 260"):
        train_tokenizer(["echo hi\n"], MIN_VOCAB - 1)


def test_vocab_larger_than_the_text_supports():
    with pytest.raises(InputError, match=r"supports only \d+ tokens.*--vocab-size"):
        train_tokenizer(["echo hello world\n"] * 3, 5000)


def test_load_missing_and_corrupt(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_tokenizer(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="corrupt"):
        load_tokenizer(bad)
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputError, match="corrupt"):
        load_tokenizer(bad)


def test_load_rejects_foreign_tokenizer(tok, tmp_path):
    d = json.loads(tok.to_str())
    d["added_tokens"] = [dict(t, content=f"[X{t['id']}]") for t in d["added_tokens"]]
    vocab = d["model"]["vocab"]
    for s in SPECIAL_TOKENS:
        vocab[f"[X{vocab.pop(s)}]"] = SPECIAL_TOKENS.index(s)
    p = tmp_path / "foreign.json"
    p.write_text(json.dumps(d))
    with pytest.raises(InputError, match="does not map <PAD> to id 0"):
        load_tokenizer(p)
