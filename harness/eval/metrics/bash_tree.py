"""bash syntax trees from tree-sitter-bash (the parser CodeBLEU's reference implementation uses for its
syntax match), and the subtrees that match counts.

tree-sitter gives a tree for every program, recovering from errors with ERROR nodes, so the syntax match
never falls back to something coarser. A subtree is the S-expression of node types with the program's own
names and literals left out (as CodeBLEU compares `node.sexp()`): `(command (command_name (word)) (word))`.
Anonymous nodes (keywords, operators, `;`) and comments are not part of it, so `a; b` and `a<newline>b`
agree. Every named node with at least one named child contributes its subtree, kept as a 16-hex-digit
blake2b digest so that large programs stay cheap. Syntax *accuracy* is judged elsewhere: by `bash -n`
(bash's own parser) and by bashlex for its own metric (syntax.py).
"""
from __future__ import annotations

import hashlib
import threading
from collections import Counter

_local = threading.local()  # a tree-sitter Parser is not safe to share between threads


def parse(src: str):
    """The root node of the program's tree-sitter-bash tree."""
    p = getattr(_local, "parser", None)
    if p is None:
        import tree_sitter_bash
        from tree_sitter import Language, Parser

        p = _local.parser = Parser(Language(tree_sitter_bash.language()))
    return p.parse(src.encode("utf-8", "replace")).root_node


def _kids(node) -> list:
    return [c for c in node.named_children if c.type != "comment"]


def subtrees(root) -> Counter:
    """Digests of every subtree with at least one named child, the root included (post-order, no recursion)."""
    out: Counter = Counter()
    digest: dict[int, str] = {}
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        kids = _kids(node)
        if not done:
            stack.append((node, True))
            stack.extend((k, False) for k in reversed(kids))
            continue
        parts = [digest.pop(k.id) for k in kids]
        text = node.type + ("(" + ",".join(parts) + ")" if parts else "")
        d = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
        digest[node.id] = d
        if parts:
            out[d] += 1
    return out


def subtree_match(hyp: Counter, ref: Counter) -> tuple[int, int]:
    """(matched, total): reference subtrees found in the hypothesis, clipped by count."""
    return sum(min(c, hyp[s]) for s, c in ref.items()), sum(ref.values())
