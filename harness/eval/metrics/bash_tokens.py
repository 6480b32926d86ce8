"""A bash-aware tokenizer shared by BLEU, the syntax report and mutation testing (the scanner is bash_lexer.py).

`tokenize(src)` never raises and returns every meaningful piece of a program as a `Token` with its offsets:
words, reserved words (only where bash treats them as such), assignments (`NAME=`, `NAME+=`, `NAME[i]=`),
parameter expansions (`$x`, `$1`, `${x:-d}` as one token), the openers and closers of quotes and
substitutions (`"`, `'`, `$(`, `$((`, `` ` ``, `<(`), control operators, redirections with their fd
(`2>&1` is one token), comments, and here-document bodies. Quoted and here-document text is split on
whitespace so that no token contains whitespace (sacrebleu with tokenize='none' splits on spaces).

`bleu_tokens(src)` is the view BLEU and CodeBLEU score: comments dropped (they are prose, and a model
should not earn code similarity by copying them), newline and `;` merged into one separator `;` (bash treats
them alike), runs of separators collapsed, and separators that carry no meaning (at the ends, after `&&`,
`|`, `then`, `do`, `{` ...) dropped.
"""
from __future__ import annotations

from functools import lru_cache

from .bash_lexer import (DECLARATION_BUILTINS, REDIRECTION_RE, RESERVED, SPECIAL_PARAMS, Token,  # noqa: F401
                         _Scanner, _ws_free)

VERSION = "bash_tokens/1"

_CACHE_MAX_CHARS = 100_000  # larger programs are tokenized afresh each time rather than held in memory


def tokenize(src: str) -> tuple[Token, ...]:
    """All tokens of `src` in source order. Never raises; malformed input yields the tokens read so far.
    Recent programs are cached: syntax classification, BLEU and CodeBLEU read each program in turn."""
    return _tokenize_cached(src) if len(src) <= _CACHE_MAX_CHARS else _tokenize(src)


def _tokenize(src: str) -> tuple[Token, ...]:
    s = _Scanner(src)
    try:
        s.commands()
    except RecursionError:
        s.literal(s.i, s.n, "word")
    return tuple(s.out)


_tokenize_cached = lru_cache(maxsize=128)(_tokenize)


_NO_SEP_AFTER = frozenset({";", "&&", "||", "|", "|&", "(", "$(", "`", "<(", ">(", "then", "do", "else", "{",
                           "in", "!", ";;", ";&", ";;&"})
_NO_SEP_BEFORE = frozenset({";;", ";&", ";;&"})


def bleu_tokens(src: str, keep_comments: bool = False) -> list[str]:
    """The whitespace-free token texts BLEU and CodeBLEU compare (see the module docstring)."""
    return list(_bleu_tokens(src, keep_comments))


def _bleu_tokens(src: str, keep_comments: bool) -> tuple[str, ...]:
    out: list[str] = []
    for t in tokenize(src):
        if t.kind == "comment":
            if keep_comments:
                out.extend(_ws_free(w) for w in t.text.split())
        elif t.kind == "sep":
            if out and out[-1] not in _NO_SEP_AFTER:
                out.append(";")
        else:
            if out and out[-1] == ";" and (t.text in _NO_SEP_BEFORE or (t.kind == "close" and t.text in ")`")):
                out.pop()
            out.append(t.text)
    while out and out[-1] == ";":
        out.pop()
    return tuple(out)
