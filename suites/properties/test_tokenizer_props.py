"""Tokenizer properties (hypothesis, `ci` profile): decode(encode(s)) == s for any text and for bash-shaped
text, and encoding never emits a special id; the tokenizer is trained on the real fixture corpora."""
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference.tokenizer import decode, encode, special_ids, train_tokenizer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tok():
    files = [p for d in ("scripts", "text") for p in sorted((ROOT / "fixtures/corpora" / d).rglob("*"))
             if p.is_file() and not p.name.endswith(".gz")]
    return train_tokenizer([p.read_text(encoding="utf-8") for p in files], 512)


WORDS = st.sampled_from(["if", "then", "fi", "for", "do", "done", "case", "esac", "echo", "printf", "local",
                         "$HOME", "${x:-default}", "$(date +%s)", "`pwd`", "\"$@\"", "'single'", "&&", "||",
                         "|", ">", "2>&1", ";", "[[", "]]", "-eq", "*.sh", "~/", "\\", "# comment", "=", "((i++))"])
INDENT = st.sampled_from(["", " ", "  ", "    ", "\t", "\t\t", " \t"])
EOL = st.sampled_from(["\n", "\r\n", "\n\n", " \\\n"])
ANY = st.text(st.characters(codec="utf-8"), max_size=12)


@st.composite
def bash_text(draw):
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        words = draw(st.lists(st.one_of(WORDS, ANY), min_size=1, max_size=8))
        lines.append(draw(INDENT) + " ".join(words) + draw(EOL))
    if draw(st.booleans()):
        tag = draw(st.sampled_from(["EOF", "'EOF'", "\"END\"", "-EOF"]))
        body = draw(st.lists(st.tuples(INDENT, ANY), max_size=4))
        end = tag.strip("'\"-")
        lines.append(f"cat <<{tag}\n" + "".join(i + b + "\n" for i, b in body) + ("\t" if tag[0] == "-" else "")
                     + end + "\n")
    return "".join(lines)


@given(st.text(st.characters(codec="utf-8")))
def test_any_text_round_trips(tok, s):
    assert decode(tok, encode(tok, s)) == s


@given(bash_text())
def test_bash_shaped_text_round_trips(tok, s):
    ids = encode(tok, s)
    assert decode(tok, ids) == s
    assert not set(ids) & set(special_ids(tok).values())


@given(st.lists(st.text(st.characters(codec="utf-8"), max_size=40), max_size=6))
def test_concatenation_is_preserved(tok, parts):
    ids = [i for p in parts for i in encode(tok, p)]
    assert decode(tok, ids) == "".join(parts)
