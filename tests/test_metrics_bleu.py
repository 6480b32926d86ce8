"""harness.eval.metrics.bleu: sacrebleu on bash tokens; our statistics must reproduce sacrebleu's numbers."""
import pytest
from sacrebleu.metrics.bleu import BLEU

from harness.eval.metrics.bash_tokens import bleu_tokens
from harness.eval.metrics.bleu import ZERO, bleu_text, corpus_bleu, ngram_stats, sentence_bleu, signature

PAIRS = [
    ('for f in *.log; do gzip "$f"; done', 'for f in *.txt; do rm "$f"; done'),
    ("ls -la | wc -l", "find . -type f | wc -l"),
    ('echo "hello $USER"', 'printf "hello %s\\n" "$USER"'),
    ("cd /tmp && tar xzf a.tgz", "tar -C /tmp -xzf a.tgz"),
    ("x=1", "y=2"),
]


@pytest.mark.parametrize("src", ["ls", "echo hi", "if true; then echo a; fi", PAIRS[0][0]])
def test_identity_is_one(src):
    assert sentence_bleu(src, src) == 1.0
    assert corpus_bleu([src], [src])["score"] == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("hyp,ref", PAIRS)
def test_our_statistics_reproduce_sacrebleu(hyp, ref):
    ours = ngram_stats(bleu_tokens(hyp), bleu_tokens(ref)).score()
    theirs = BLEU(tokenize="none", effective_order=True).sentence_score(bleu_text(hyp), [bleu_text(ref)]).score / 100
    assert ours == pytest.approx(theirs, abs=1e-12)
    assert 0.0 <= sentence_bleu(hyp, ref) <= 1.0


def test_corpus_score_is_sum_of_statistics():
    hyps, refs = zip(*PAIRS)
    total = ZERO
    for h, r in PAIRS:
        total = total + ngram_stats(bleu_tokens(h), bleu_tokens(r))
    assert corpus_bleu(list(hyps), list(refs))["score"] == pytest.approx(total.score(), abs=1e-12)


def test_signature_names_every_choice():
    sig = signature()
    for part in ("nrefs:1", "tok:none", "eff:yes", "smooth:exp", "version:", "pretok:bash_tokens/1"):
        assert part in sig
    assert corpus_bleu(["ls"], ["ls"])["signature"] == sig


def test_layout_and_comments_do_not_count():
    assert sentence_bleu("# list\nls -l\npwd\n", "ls -l; pwd") == 1.0
    assert sentence_bleu("ls -l", "ls -a") < 1.0


def test_unrelated_is_low_and_length_mismatch_raises():
    assert sentence_bleu("tar czf backup.tgz /home", 'for i in 1 2 3; do echo "$i"; done') < 0.1
    with pytest.raises(ValueError):
        corpus_bleu(["ls"], [])
