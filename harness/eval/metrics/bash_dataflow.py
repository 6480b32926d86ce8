"""Def-use data flow of bash variables for CodeBLEU's dataflow match (Ren et al. 2020, sec. 3.3), read from
the tree-sitter-bash tree (bash_tree.py) in program order.

Edges:
  definitions  (NAME, "computedFrom", (names the value reads...))
      NAME=value / NAME+=value / NAME=(array) (also after declare/local/export/readonly/typeset),
      for/select NAME in words, arithmetic `x = expr`, `x += expr`, `x++`, `--x`;
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

import re
from collections import Counter

from .bash_tokens import SPECIAL_PARAMS
from .bash_tree import parse

Edge = tuple[str, str, tuple[str, ...]]

_NAME = re.compile(r"[A-Za-z_]\w*")
_ARITH_ASSIGN = frozenset({"=", "+=", "-=", "*=", "/=", "%=", "<<=", ">>=", "&=", "|=", "^="})
_READ_ARG_OPTS = {"read": set("dinNptua"), "mapfile": set("dnOsuCc"), "readarray": set("dnOsuCc")}
_INPUT_COMMANDS = ("read", "mapfile", "readarray", "getopts", "printf")
_NAME_NODES = ("variable_name", "special_variable_name")


def _text(node) -> str:
    return node.text.decode("utf-8", "replace")


def _starts_arithmetic(node) -> bool:
    if node.type in ("arithmetic_expansion", "c_style_for_statement"):
        return True
    return node.type == "compound_statement" and node.child_count > 0 and node.children[0].type == "(("


class _Flow:
    def __init__(self):
        self.edges: list[Edge] = []
        self.defined: set[str] = set()

    def use(self, name: str) -> None:
        self.edges.append((name, "comesFrom", (name,) if name in self.defined else ()))

    def define(self, name: str, rel: str, parents) -> None:
        self.edges.append((name, rel, tuple(dict.fromkeys(parents))))

    def reads(self, node, arith: bool = False) -> list[str]:
        """Names a subtree reads, in order, without recording anything."""
        sub = _Flow()
        sub.visit(node, arith)
        return [e[0] for e in sub.edges if e[1] == "comesFrom"]

    def visit(self, node, arith: bool = False) -> None:
        t = node.type
        if t == "comment":
            return
        arith = (arith or _starts_arithmetic(node)) and t not in ("test_command", "command_substitution", "string")
        if t == "variable_assignment":
            self._assign(node, arith)
        elif t == "for_statement":
            self._for(node)
        elif t == "command":
            self._command(node)
        elif t in ("simple_expansion", "expansion"):
            self._expansion(node)
        elif arith and t == "binary_expression" and _text(node.child_by_field_name("operator") or node) in _ARITH_ASSIGN \
                and (left := node.child_by_field_name("left")) is not None and _NAME.fullmatch(_text(left)):
            op = _text(node.child_by_field_name("operator"))
            right = node.child_by_field_name("right")
            parents = ([] if op == "=" else [_text(left)]) + (self.reads(right, True) if right is not None else [])
            self.define(_text(left), "computedFrom", parents)
            self.defined.add(_text(left))
            if right is not None:
                self.visit(right, True)
        elif arith and t in ("postfix_expression", "unary_expression") and \
                any(c.type in ("++", "--") for c in node.children):
            target = next((c for c in node.named_children if _NAME.fullmatch(_text(c))), None)
            if target is None:
                self._children(node, arith)
            else:
                self.use(_text(target))
                self.define(_text(target), "computedFrom", [_text(target)])
                self.defined.add(_text(target))
        elif arith and t in ("variable_name", "word") and _NAME.fullmatch(_text(node)):
            self.use(_text(node))
        else:
            self._children(node, arith)

    def _children(self, node, arith: bool) -> None:
        for c in node.named_children:
            self.visit(c, arith)

    def _assign(self, node, arith: bool) -> None:
        target = node.child_by_field_name("name")
        value = node.child_by_field_name("value")
        index = None
        if target is not None and target.type == "subscript":
            index = target.child_by_field_name("index")
            target = target.child_by_field_name("name")
        if target is None or not _NAME.fullmatch(_text(target)):
            self._children(node, arith)
            return
        name = _text(target)
        self.define(name, "computedFrom", self.reads(value, arith) if value is not None else [])
        for part in (index, value):
            if part is not None:
                self.visit(part, arith)
        self.defined.add(name)

    def _for(self, node) -> None:
        var = node.child_by_field_name("variable")
        values = node.children_by_field_name("value")
        if var is not None and _NAME.fullmatch(_text(var)):
            self.define(_text(var), "computedFrom", [n for v in values for n in self.reads(v)])
            self.defined.add(_text(var))
        for c in node.named_children:
            if c != var:
                self.visit(c)

    def _command(self, node) -> None:
        name = node.child_by_field_name("name")
        cmd = _text(name) if name is not None else ""
        if cmd in _INPUT_COMMANDS:
            args = [_text(a) for a in node.children_by_field_name("argument")]
            for target in _input_targets(cmd, args):
                self.define(target, "input", [])
                self.defined.add(target)
        self._children(node, False)

    def _expansion(self, node) -> None:
        for c in node.named_children:
            if c.type in _NAME_NODES:
                self.use(_text(c))
            elif c.type == "subscript":
                head = c.child_by_field_name("name")
                if head is not None:
                    self.use(_text(head))
                for k in c.named_children:
                    if k != head:
                        self.visit(k)
            else:
                self.visit(c)


def _input_targets(cmd: str, words: list[str]) -> list[str]:
    """Variables that read/mapfile/readarray/getopts/printf -v assign from their arguments."""
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


def raw_edges(root) -> list[Edge]:
    flow = _Flow()
    flow.visit(root)
    return flow.edges


def normalize(edges: list[Edge]) -> list[Edge]:
    """Rename variables v0, v1... by first appearance; special parameters keep their names."""
    names: dict[str, str] = {}

    def rn(n: str) -> str:
        if n in SPECIAL_PARAMS or n.isdigit():
            return "$" + n
        if n not in names:
            names[n] = f"v{len(names)}"
        return names[n]

    return [(rn(name), rel, tuple(rn(p) for p in parents)) for name, rel, parents in edges]


def dataflow(src_or_tree) -> Counter:
    """Multiset of normalized def-use edges of a program (its source text or its tree-sitter root node)."""
    root = parse(src_or_tree) if isinstance(src_or_tree, str) else src_or_tree
    return Counter(normalize(raw_edges(root)))


def dataflow_match(hyp: Counter, ref: Counter) -> tuple[int, int]:
    """(matched, total): reference edges found in the hypothesis, clipped by count."""
    return sum(min(c, hyp[e]) for e, c in ref.items()), sum(ref.values())
