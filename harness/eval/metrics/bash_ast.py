"""Subtrees for CodeBLEU's syntax match, from a bashlex AST or, where bashlex cannot parse, from tokens.

A subtree is written as an S-expression of node labels with the program's own names and literals left out
(as CodeBLEU does with tree-sitter's sexp): `(command (word) (redirect:> (word)))`. Labels keep what is
structure in bash: the node kind, reserved words (`rw:then`), operators (`op:&&`), pipes and redirection
types. `;`/newline separators are dropped and nested lists flattened, so `a; b` and `a<newline>b` agree.
Every node with at least one child contributes its subtree; a subtree is kept as a 16-hex-digit blake2b
digest of its S-expression so that large programs stay cheap.

Fallback (`token_subtrees`): a tree built from harness.eval.metrics.bash_tokens by nesting — compound commands
(if/fi, case/esac, for|while|until|select/done, { }, [[ ]]), ( ) groups, quotes and substitutions — with
simple commands as nodes and token kinds as leaves. It is a coarser tree than bashlex's and the two are
never mixed within one pair: CodeBLEU uses bashlex on both sides or the token tree on both sides.
"""
from __future__ import annotations

import hashlib
from collections import Counter

import bashlex

from .bash_tokens import Token

_Node = bashlex.ast.node


def _digest(label: str, children: list[str]) -> str:
    text = label + ("(" + ",".join(children) + ")" if children else "")
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _text(v) -> str:
    # bashlex 0.18 sometimes stores a reserved word as a list (e.g. the `elif` of an if with several
    # elif branches), so labels never assume a str
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple)):
        return " ".join(_text(x) for x in v if isinstance(x, (str, list, tuple)))
    return str(v)


def _label(n: _Node) -> str:
    k = n.kind
    if k == "reservedword":
        return "rw:" + _text(n.word)
    if k == "operator":
        return "op:" + _text(n.op)
    if k == "pipe":
        return "pipe:" + _text(n.pipe)
    if k == "redirect":
        return "redirect:" + str(n.type)
    return k


def _children(n: _Node) -> list[_Node]:
    seen, out = set(), []
    for v in vars(n).values():
        for c in (v if isinstance(v, list) else [v]):
            if isinstance(c, _Node) and id(c) not in seen:
                seen.add(id(c))
                out.append(c)
    out.sort(key=lambda c: c.pos[0] if getattr(c, "pos", None) else 0)
    kept = []
    for c in out:
        if c.kind == "operator" and c.op in (";", "\n"):
            continue
        if c.kind == "list" and n.kind == "list":
            kept.extend(_children(c))  # flatten: `a; b` inside a list is the same list
        else:
            kept.append(c)
    return kept


def ast_subtrees(tree: list[_Node]) -> Counter:
    """Digests of every non-leaf subtree of a bashlex parse (the list bashlex.parse returns)."""
    out: Counter = Counter()
    root = bashlex.ast.node(kind="list", parts=list(tree), pos=(0, 0))

    def visit(n: _Node, depth: int) -> str:
        kids = [visit(c, depth + 1) for c in _children(n)] if depth < 400 else []
        d = _digest(_label(n), kids)
        if kids:
            out[d] += 1
        return d

    visit(root, 0)
    return out


_CLOSERS = {"if": "fi", "case": "esac", "for": "done", "while": "done", "until": "done", "select": "done",
            "{": "}", "[[": "]]"}
_OPEN_CLOSE = {"(": ")", '"': '"', "'": "'", "$'": "'", '$"': '"', "$(": ")", "<(": ")", ">(": ")", "`": "`",
               "$((": "))", "((": "))", "$[": "]"}
_CMD_FRAMES = ("list", "kw:", "group", "open:$(", "open:<(", "open:>(", "open:`")
_SEPARATING = frozenset({"&&", "||", "|", "|&", "&", ";;", ";&", ";;&"})


class _T:
    __slots__ = ("label", "kids", "closer")

    def __init__(self, label: str, closer: str | None = None):
        self.label, self.kids, self.closer = label, [], closer


def token_tree(tokens: list[Token]) -> _T:
    root = _T("list")
    stack: list[list] = [[root, None]]  # [node, current simple command or None]

    def end_cmd():
        stack[-1][1] = None

    def leaf(label: str):
        node, cmd = stack[-1]
        if node.label.startswith(_CMD_FRAMES):
            if cmd is None:
                cmd = stack[-1][1] = _T("cmd")
                node.kids.append(cmd)
            cmd.kids.append(_T(label))
        else:
            node.kids.append(_T(label))

    def push(node: _T):
        parent, cmd = stack[-1]
        (cmd.kids if cmd is not None and node.label.startswith("open:") else parent.kids).append(node)
        stack.append([node, None])

    def pop_to(closer: str, kind: str) -> bool:
        for depth in range(len(stack) - 1, 0, -1):
            node = stack[depth][0]
            if node.closer == closer and (kind == "close") == node.label.startswith("open:"):
                del stack[depth:]
                return True
        return False

    for t in tokens:
        if t.kind == "comment":
            continue
        if t.kind == "sep":
            end_cmd()
        elif t.kind == "op" and t.text in _SEPARATING:
            end_cmd()
            stack[-1][0].kids.append(_T("op:" + t.text))
        elif t.kind == "keyword" and t.text in _CLOSERS:
            end_cmd()
            push(_T("kw:" + t.text, _CLOSERS[t.text]))
        elif t.kind == "keyword" and t.text in ("fi", "esac", "done", "}", "]]"):
            end_cmd()
            if not pop_to(t.text, "keyword"):
                leaf("kw:" + t.text)
        elif t.kind == "keyword":
            end_cmd()
            stack[-1][0].kids.append(_T("kw:" + t.text))
        elif t.kind == "open":
            push(_T("open:" + t.text, _OPEN_CLOSE.get(t.text)))
        elif t.kind == "close":
            if not pop_to(t.text, "close"):
                leaf("close")
        elif t.kind == "op" and t.text == "(" and not stack[-1][0].label.startswith("open:"):
            end_cmd()
            push(_T("group", ")"))
        elif t.kind == "op" and t.text == ")" and not stack[-1][0].label.startswith("open:"):
            end_cmd()
            if not pop_to(")", "op"):
                stack[-1][0].kids.append(_T("op:)"))
        elif t.kind in ("op", "redir", "keyword"):
            leaf(f"{t.kind}:{t.text}")
        else:
            leaf(t.kind)
    return root


def token_subtrees(tokens: list[Token]) -> Counter:
    """Digests of every non-leaf subtree of the token tree (the fallback representation)."""
    out: Counter = Counter()
    root = token_tree(tokens)

    def visit(n: _T, depth: int) -> str:
        kids = [visit(c, depth + 1) for c in n.kids] if depth < 400 else []
        d = _digest(n.label, kids)
        if kids:
            out[d] += 1
        return d

    visit(root, 0)
    return out


def subtree_match(hyp: Counter, ref: Counter) -> tuple[int, int]:
    """(matched, total): reference subtrees found in the hypothesis, clipped by count."""
    return sum(min(c, hyp[d]) for d, c in ref.items()), sum(ref.values())
