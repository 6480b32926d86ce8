"""Def-use data flow of bash variables for CodeBLEU's dataflow match (Ren et al. 2020, sec. 3.3).

Edges, read from harness.eval.metrics.bash_tokens in program order:
  definitions  (NAME, "computedFrom", (names the value reads...))
      NAME=value / NAME+=value / NAME=(array) (also after declare/local/export/readonly/typeset),
      for/select NAME in words, arithmetic `x = expr`, `x += expr`, `x++`;
    (NAME, "input", ())  read [opts] NAME..., read -a NAME, mapfile/readarray NAME, getopts spec NAME,
      printf -v NAME;
  uses         (NAME, "comesFrom", (NAME,)) when NAME was defined earlier in the program, else
    (NAME, "comesFrom", ()) — `$x`, `${x...}` (and names nested in it), bare names in arithmetic.
Names are then renamed v0, v1, ... in order of first appearance, as CodeBLEU normalizes variables, so a
consistent renaming leaves the edges unchanged. Positional and special parameters ($1, $@, $?, ...) are not
renamed. Not modelled: indirection (${!x}), eval, `declare -n`, scoping of `local`, and control flow (a
use comes from *some* earlier definition, not a reaching one).
"""
from __future__ import annotations

import itertools
import re
from collections import Counter

from .bash_tokens import SPECIAL_PARAMS, Token, tokenize

Edge = tuple[str, str, tuple[str, ...]]

_NAME = re.compile(r"[A-Za-z_]\w*")
_PARAM_HEAD = re.compile(r"\$\{[#!]?([A-Za-z_]\w*|\d+|[@*#?$!-])")
_NESTED = re.compile(r"\$\{?([A-Za-z_]\w*)")
_ARITH_ASSIGN = frozenset({"=", "+=", "-=", "*=", "/=", "%=", "<<=", ">>=", "&=", "|=", "^="})
_READ_ARG_OPTS = {"read": set("dinNptua"), "mapfile": set("dnOsuCc"), "readarray": set("dnOsuCc")}
_COMMAND_START = frozenset({"then", "do", "else", "elif", "if", "while", "until", "{", "!", "time"})


def _names(t: Token) -> list[str]:
    """Variables a token reads."""
    if t.kind != "var":
        return []
    if not t.text.startswith("$"):
        return [t.text]  # a bare name in arithmetic
    if t.text.startswith("${"):
        m = _PARAM_HEAD.match(t.text)
        head = m.group(1) if m else None
        rest = _NESTED.findall(t.text[m.end() if m else 2:])
        return ([head] if head else []) + rest
    return [t.text[1:]]


def _is_command_word(tokens: list[Token], k: int) -> bool:
    j = k - 1
    while j >= 0 and tokens[j].kind in ("assign", "comment"):
        j -= 1  # prefix assignments
    if j < 0:
        return True
    p = tokens[j]
    return (p.kind == "sep" or (p.kind == "op" and p.text in ("&&", "||", "|", "|&", "&", "(", ")", ";;"))
            or (p.kind == "keyword" and p.text in _COMMAND_START) or (p.kind == "open" and p.text in ("$(", "`", "<(", ">(")))


def _args(tokens: list[Token], k: int) -> list[str]:
    """The shell words after the command word at k, up to the end of that simple command, without
    redirections and their targets (`read -r line < file` -> ["-r", "line"])."""
    words: list[list[Token]] = []
    depth, prev_end = 0, tokens[k].end
    for t in itertools.islice(tokens, k + 1, None):
        if depth == 0 and (t.kind in ("sep", "comment", "keyword", "close") or (t.kind == "op" and t.text != "=")):
            break
        if depth == 0 and (t.start != prev_end or t.kind == "redir" or (words and words[-1][-1].kind == "redir")):
            words.append([])
        if not words:
            words.append([])
        words[-1].append(t)
        depth += (t.kind == "open") - (t.kind == "close")
        prev_end = t.end
    out, skip = [], False
    for w in words:
        if w[0].kind == "redir":
            skip = not w[0].text[-1].isdigit() and not w[0].text.endswith("-")  # `2>&1` has no target word
        elif skip:
            skip = False
        else:
            out.append("".join(t.text for t in w))
    return out


def raw_edges(tokens: list[Token]) -> list[Edge]:
    edges: list[Edge] = []
    defined: set[str] = set()
    pending: list[tuple[int, str]] = []  # (offset where the definition takes effect, name)
    skip: set[int] = set()               # token indices already consumed as definition targets

    def use(name: str):
        edges.append((name, "comesFrom", (name,) if name in defined else ()))

    def define(name: str, rel: str, parents: list[str], effective_at: int):
        edges.append((name, rel, tuple(dict.fromkeys(parents))))
        pending.append((effective_at, name))

    for k, t in enumerate(tokens):
        if pending:
            for at, name in pending:
                if at <= t.start:
                    defined.add(name)
            pending = [p for p in pending if p[0] > t.start]
        if k in skip:
            continue
        if t.kind == "assign":
            end = t.span_end if t.span_end >= 0 else t.end
            value = []
            for u in itertools.islice(tokens, k + 1, None):
                if u.start >= end:
                    break
                value.append(u)
            define(_NAME.match(t.text).group(), "computedFrom", [n for u in value for n in _names(u)], end)
        elif t.kind == "keyword" and t.text in ("for", "select") and k + 1 < len(tokens) and tokens[k + 1].kind == "word":
            name_tok = tokens[k + 1]
            words = []
            if k + 2 < len(tokens) and tokens[k + 2].kind == "keyword" and tokens[k + 2].text == "in":
                for u in itertools.islice(tokens, k + 3, None):
                    if u.kind == "sep" or (u.kind == "keyword" and u.text == "do"):
                        break
                    words.append(u)
            if _NAME.fullmatch(name_tok.text):
                define(name_tok.text, "computedFrom", [n for u in words for n in _names(u)], name_tok.end)
                skip.add(k + 1)
        elif t.kind == "word" and t.text in ("read", "mapfile", "readarray", "getopts", "printf") and _is_command_word(tokens, k):
            for name in _input_targets(t.text, _args(tokens, k)):
                define(name, "input", [], tokens[k].end)
        elif t.kind == "var" and not t.text.startswith("$") and k + 1 < len(tokens) and (
                tokens[k + 1].text in _ARITH_ASSIGN or tokens[k + 1].text in ("++", "--")):
            if tokens[k + 1].text in ("++", "--"):
                use(t.text)
                define(t.text, "computedFrom", [t.text], t.end)
            else:
                parents = []
                for u in itertools.islice(tokens, k + 2, None):
                    if u.kind == "close" or (u.kind == "op" and u.text in (",", ";")):
                        break
                    parents.extend(_names(u))
                if tokens[k + 1].text != "=":
                    parents.insert(0, t.text)
                define(t.text, "computedFrom", parents, t.end)
        elif t.kind == "var" and k > 0 and tokens[k - 1].text in ("++", "--") and not t.text.startswith("$"):
            use(t.text)
            define(t.text, "computedFrom", [t.text], t.end)
        else:
            for name in _names(t):
                use(name)
    return edges


def _input_targets(cmd: str, args: list[str]) -> list[str]:
    """Variables that read/mapfile/readarray/getopts/printf -v assign from their arguments."""
    words = args
    if cmd == "getopts":
        return [words[1]] if len(words) >= 2 and _NAME.fullmatch(words[1]) else []
    if cmd == "printf":
        return [words[1]] if len(words) >= 2 and words[0] == "-v" and _NAME.fullmatch(words[1]) else []
    names, i = [], 0
    while i < len(words):
        w = words[i]
        if w.startswith("-") and len(w) > 1:
            takes = next((o for o in w[1:] if o in _READ_ARG_OPTS[cmd]), None)
            if takes is not None and w.endswith(takes) and i + 1 < len(words):
                if takes == "a" and _NAME.fullmatch(words[i + 1]):  # read -a NAME
                    names.append(words[i + 1])
                i += 2
            else:
                i += 1
            continue
        if _NAME.fullmatch(w):
            names.append(w)
        i += 1
    if cmd in ("mapfile", "readarray"):
        names = names[-1:] or ["MAPFILE"]
    return names


def normalize(edges: list[Edge]) -> list[Edge]:
    """Rename variables v0, v1... by first appearance; special parameters keep their names."""
    names: dict[str, str] = {}

    def rn(n: str) -> str:
        if n in SPECIAL_PARAMS or n.isdigit():
            return "$" + n
        if n not in names:
            names[n] = f"v{len(names)}"
        return names[n]

    out = []
    for name, rel, parents in edges:
        new_name = rn(name)
        out.append((new_name, rel, tuple(rn(p) for p in parents)))
    return out


def dataflow(src_or_tokens) -> Counter:
    """Multiset of normalized def-use edges of a program (source text or its tokens)."""
    tokens = tokenize(src_or_tokens) if isinstance(src_or_tokens, str) else src_or_tokens
    return Counter(normalize(raw_edges(tokens)))


def dataflow_match(hyp: Counter, ref: Counter) -> tuple[int, int]:
    """(matched, total): reference edges found in the hypothesis, clipped by count."""
    return sum(min(c, hyp[e]) for e, c in ref.items()), sum(ref.values())
