"""CodeBLEU for bash (after Ren et al. 2020, "CodeBLEU: a Method for Automatic Evaluation of Code Synthesis").

CodeBLEU = a*ngram + b*weighted_ngram + c*syntax + d*dataflow, a = b = c = d = 0.25 by default (the paper's
setting), every component on [0, 1]:
  ngram           BLEU (harness.eval.metrics.bleu: sacrebleu's formula on bash_tokens, exp smoothing, effective order)
  weighted_ngram  the same with unigrams weighted: KEYWORD_WEIGHT (1.0) for the reserved words, builtins and
                  operators listed below, OTHER_WEIGHT (0.2) for everything else, as in the paper's release
  syntax          share of the reference's subtrees found in the hypothesis (clipped counts), from the
                  tree-sitter-bash trees of both sides (bash_tree.py), as CodeBLEU's own implementation does
  dataflow        share of the reference's normalized def-use edges found in the hypothesis, read from the
                  same trees (bash_dataflow.py)
A component whose reference side is empty (no subtrees, no variables) is *unavailable*: it is left out and
the remaining weights are renormalized to sum to 1; the weights used are recorded. Corpus scores sum the
statistics over all pairs before dividing, as the paper does. Identical programs score 1.0.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .bash_dataflow import dataflow, dataflow_match
from .bash_tokens import REDIRECTION_RE, RESERVED, bleu_tokens
from .bash_tree import parse, subtree_match, subtrees
from .bleu import ZERO, NgramStats, ngram_pair_stats

DEFAULT_WEIGHTS = {"ngram": 0.25, "weighted_ngram": 0.25, "syntax": 0.25, "dataflow": 0.25}
KEYWORD_WEIGHT, OTHER_WEIGHT = 1.0, 0.2
SYNTAX_SOURCE = "tree-sitter"

# bash 5.2 `compgen -b`
BUILTINS = frozenset(
    ". : [ alias bg bind break builtin caller cd command compgen complete compopt continue declare dirs disown "
    "echo enable eval exec exit export false fc fg getopts hash help history jobs kill let local logout mapfile "
    "popd printf pushd pwd read readarray readonly return set shift shopt source suspend test times trap true "
    "type typeset ulimit umask unalias unset wait".split())
OPERATORS = frozenset("; ;; ;& ;;& & && || | |& ( ) (( )) $( $(( ` <( >( ] < > >> << <<- <<< <& >& &> &>> <> >|"
                      .split())
KEYWORDS = RESERVED | BUILTINS | OPERATORS


def token_weight(tok: str) -> float:
    if tok in KEYWORDS or REDIRECTION_RE.fullmatch(tok):  # `2>`, `2>&1`, `&>>` are operators too
        return KEYWORD_WEIGHT
    return OTHER_WEIGHT


@dataclass
class Side:
    """What CodeBLEU needs of one program; build once, compare many times."""
    src: str
    bleu: list[str] = field(repr=False)
    _tree: object = field(default=None, repr=False)
    _sub: Counter | None = field(default=None, repr=False)
    _df: Counter | None = field(default=None, repr=False)

    @classmethod
    def of(cls, src: str) -> "Side":
        return cls(src, bleu_tokens(src))

    def tree(self):
        if self._tree is None:
            self._tree = parse(self.src)
        return self._tree

    def subtrees(self) -> Counter:
        if self._sub is None:
            self._sub = subtrees(self.tree())
        return self._sub

    def dataflow(self) -> Counter:
        if self._df is None:
            self._df = dataflow(self.tree())
        return self._df


@dataclass(frozen=True)
class PairStats:
    ngram: NgramStats
    weighted: NgramStats
    syntax: tuple[int, int]       # (matched, total) reference subtrees
    dataflow: tuple[int, int]     # (matched, total) reference edges
    syntax_source: str            # the parser the subtrees came from: "tree-sitter"
    identical: bool


def pair_stats(hyp: Side, ref: Side) -> PairStats:
    plain, weighted = ngram_pair_stats(hyp.bleu, ref.bleu, token_weight)
    return PairStats(plain, weighted,
                     subtree_match(hyp.subtrees(), ref.subtrees()), dataflow_match(hyp.dataflow(), ref.dataflow()),
                     SYNTAX_SOURCE, hyp.bleu == ref.bleu)


def combine(components: dict[str, float | None], weights: dict[str, float] = DEFAULT_WEIGHTS) -> tuple[float | None, dict]:
    """Weighted sum over the available components, weights renormalized; returns (score, weights used)."""
    avail = {k: w for k, w in weights.items() if components.get(k) is not None and w > 0}
    total = sum(avail.values())
    if total <= 0:
        return None, {}
    used = {k: w / total for k, w in avail.items()}
    return min(1.0, max(0.0, sum(components[k] * w for k, w in used.items()))), used


def _ratio(m: tuple[int, int]) -> float | None:
    return m[0] / m[1] if m[1] else None


def sentence_codebleu(s: PairStats, weights: dict[str, float] = DEFAULT_WEIGHTS) -> dict:
    comps = {"ngram": 1.0 if s.identical else s.ngram.score(),
             "weighted_ngram": 1.0 if s.identical else s.weighted.score(),
             "syntax": _ratio(s.syntax), "dataflow": _ratio(s.dataflow)}
    score, used = combine(comps, weights)
    return {"codebleu": score, **comps, "weights_used": used, "syntax_source": s.syntax_source}


def corpus_codebleu(stats: list[PairStats], weights: dict[str, float] = DEFAULT_WEIGHTS) -> dict:
    if not stats:
        return {"codebleu": None, "weights": dict(weights), "weights_used": {}}
    ng, wn = ZERO, ZERO
    syn, df = (0, 0), (0, 0)
    for s in stats:
        ng, wn = ng + s.ngram, wn + s.weighted
        syn = (syn[0] + s.syntax[0], syn[1] + s.syntax[1])
        df = (df[0] + s.dataflow[0], df[1] + s.dataflow[1])
    every_identical = all(s.identical for s in stats)
    comps = {"ngram": 1.0 if every_identical else ng.score(), "weighted_ngram": 1.0 if every_identical else wn.score(),
             "syntax": _ratio(syn), "dataflow": _ratio(df)}
    score, used = combine(comps, weights)
    sources = Counter(s.syntax_source for s in stats)
    return {"codebleu": score, **comps, "weights": dict(weights), "weights_used": used,
            "syntax_sources": dict(sources), "syntax_counts": list(syn), "dataflow_counts": list(df),
            "keyword_weight": KEYWORD_WEIGHT, "other_weight": OTHER_WEIGHT}


def codebleu(hyp: str, ref: str, weights: dict[str, float] = DEFAULT_WEIGHTS) -> dict:
    """CodeBLEU of one program against one reference, with its components."""
    return sentence_codebleu(pair_stats(Side.of(hyp), Side.of(ref)), weights)
