"""BLEU over bash programs: sacrebleu on text pre-tokenized by harness.eval.metrics.bash_tokens.

sacrebleu runs with tokenize='none' (it only splits our space-joined tokens), the default 'exp' smoothing,
and effective_order=True so that programs shorter than 4 tokens are scored on the n-gram orders they have
(an identical 3-token program scores 1.0, not 0). Scores are reported on [0, 1] (sacrebleu's 0-100 / 100);
the signature names every choice and is stored with the result.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import sacrebleu
from sacrebleu.metrics.bleu import BLEU

from .bash_tokens import VERSION as TOKENIZER_VERSION
from .bash_tokens import bleu_tokens

MAX_ORDER = 4


def _bleu() -> BLEU:
    return BLEU(tokenize="none", effective_order=True, smooth_method="exp")


def signature(metric: BLEU | None = None) -> str:
    """sacrebleu's signature plus our tokenizer: nrefs:1|case:mixed|eff:yes|tok:none|smooth:exp|version:...
    |pretok:bash_tokens/1. sacrebleu only knows nrefs after scoring, hence the one-line corpus."""
    if metric is None:
        metric = _bleu()
        metric.corpus_score(["x"], [["x"]])
    return f"{metric.get_signature()}|pretok:{TOKENIZER_VERSION}"


def bleu_text(src: str) -> str:
    return " ".join(bleu_tokens(src))


@dataclass(frozen=True)
class NgramStats:
    """Sufficient statistics of BLEU for one pair (or summed over a corpus); counts may be weighted."""
    correct: tuple[float, ...]
    total: tuple[float, ...]
    sys_len: int
    ref_len: int

    def __add__(self, other: "NgramStats") -> "NgramStats":
        return NgramStats(tuple(a + b for a, b in zip(self.correct, other.correct)),
                          tuple(a + b for a, b in zip(self.total, other.total)),
                          self.sys_len + other.sys_len, self.ref_len + other.ref_len)

    def score(self) -> float:
        """BLEU on [0, 1] with sacrebleu's own formula (exp smoothing, effective order)."""
        if self.sys_len == 0:
            return 0.0
        s = BLEU.compute_bleu(list(self.correct), list(self.total), self.sys_len, self.ref_len,
                              smooth_method="exp", effective_order=True, max_ngram_order=MAX_ORDER).score
        return min(1.0, max(0.0, s / 100.0))


ZERO = NgramStats((0.0,) * MAX_ORDER, (0.0,) * MAX_ORDER, 0, 0)


def ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def ngram_stats(hyp: list[str], ref: list[str], weight=None) -> NgramStats:
    """Clipped n-gram matches of hyp against ref."""
    return ngram_pair_stats(hyp, ref, weight)[1 if weight is not None else 0]


def ngram_pair_stats(hyp: list[str], ref: list[str], weight) -> tuple[NgramStats, NgramStats]:
    """(plain, weighted) statistics from one count of the n-grams. `weight(token)` weights unigrams only,
    as in CodeBLEU's weighted n-gram match (Ren et al. 2020, sec. 3.1)."""
    correct, total, w_correct, w_total = [], [], [], []
    for n in range(1, MAX_ORDER + 1):
        h, r = ngrams(hyp, n), ngrams(ref, n)
        correct.append(float(sum(min(c, r[g]) for g, c in h.items() if g in r)))
        total.append(float(len(hyp) - n + 1 if len(hyp) >= n else 0))
        if n == 1 and weight is not None:
            w_correct.append(sum(min(c, r[g]) * weight(g[0]) for g, c in h.items() if g in r))
            w_total.append(sum(c * weight(g[0]) for g, c in h.items()))
        else:
            w_correct.append(correct[-1])
            w_total.append(total[-1])
    plain = NgramStats(tuple(correct), tuple(total), len(hyp), len(ref))
    return plain, NgramStats(tuple(w_correct), tuple(w_total), len(hyp), len(ref))


def sentence_bleu(hyp: str, ref: str) -> float:
    """BLEU of one program against one reference, on [0, 1]; identical token sequences score 1.0."""
    h, r = bleu_tokens(hyp), bleu_tokens(ref)
    if h == r:
        return 1.0
    return ngram_stats(h, r).score()


def corpus_bleu(hyps: list[str], refs: list[str]) -> dict:
    """Corpus BLEU through sacrebleu itself; returns score (0-1), sacrebleu's 0-100 score, its details and
    the signature."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    return corpus_bleu_tokens([bleu_tokens(h) for h in hyps], [bleu_tokens(r) for r in refs])


def corpus_bleu_tokens(hyps: list[list[str]], refs: list[list[str]]) -> dict:
    """corpus_bleu on token lists already made by bash_tokens.bleu_tokens."""
    metric = _bleu()
    res = metric.corpus_score([" ".join(h) for h in hyps], [[" ".join(r) for r in refs]])
    return {"score": min(1.0, res.score / 100.0), "sacrebleu_score": res.score,
            "precisions": [p / 100.0 for p in res.precisions], "bp": res.bp, "sys_len": res.sys_len,
            "ref_len": res.ref_len, "signature": signature(metric), "sacrebleu_version": sacrebleu.__version__}
