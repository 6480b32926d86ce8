"""The bash lexer behind bash_tokens.tokenize: a scanner that reads commands, words, quotes, substitutions,
arithmetic and here-documents as bash does, and emits `Token`s with their offsets. It never raises;
nesting deeper than _MAX_DEPTH is read as literal text.
"""
from __future__ import annotations

import re
from typing import NamedTuple

RESERVED = frozenset({"if", "then", "else", "elif", "fi", "case", "esac", "for", "select", "while", "until",
                      "do", "done", "in", "function", "time", "coproc", "{", "}", "!", "[[", "]]"})
# After these a new command starts (so a reserved word there is a keyword).
_LIST_STARTERS = frozenset({"if", "then", "else", "elif", "while", "until", "do", "{", "!", "time", "coproc"})
DECLARATION_BUILTINS = frozenset({"declare", "local", "export", "readonly", "typeset"})
SPECIAL_PARAMS = frozenset("0123456789@*#?$!-")

_CONTROL_OPS = (";;&", ";;", ";&", "&&", "||", "|&", "|", "&", ";")
REDIRECTION_RE = re.compile(r"(\d+|\{[A-Za-z_]\w*\})?(<<<|<<-|<<|<>|<&|>&|>>|>\||&>>|&>|<|>)(\d+-?|-)?")
_ASSIGN_RE = re.compile(r"[A-Za-z_]\w*(\[[^\]\n]*\])?\+?=")
_NAME_RE = re.compile(r"[A-Za-z_]\w*")
_WORD_RE = re.compile(r"[^\s;&|()<>]+")
_NONSPACE = re.compile(r"\S+")
_NUM_RE = re.compile(r"\d\w*(#\w+)?")
_ARITH_OPS = ("<<=", ">>=", "**", "++", "--", "==", "!=", "<=", ">=", "&&", "||", "+=", "-=", "*=", "/=", "%=",
              "&=", "|=", "^=", "<<", ">>")
_METACHARS = frozenset(" \t\n;&|()<>")
_MAX_DEPTH = 100  # nesting of substitutions/quotes; deeper input is read as literal text


class Token(NamedTuple):
    kind: str   # word keyword assign var op redir open close string sep comment
    text: str
    start: int  # offsets into the source: [start, end)
    end: int
    span_end: int = -1  # assign: end of its value; open: end of its close; << and <<-: end of the body


def _ws_free(s: str) -> str:
    return re.sub(r"\s", "\u2581", s)


class _Scanner:
    def __init__(self, src: str):
        self.src = src
        self.n = len(src)
        self.i = 0
        self.out: list[Token] = []
        self.heredocs: list[tuple[str, bool, bool, int]] = []  # (delimiter, strip_tabs, quoted, redir index)
        self.depth = 0

    def emit(self, kind, text, start, end, span_end=-1) -> int:
        self.out.append(Token(kind, text, start, end, span_end))
        return len(self.out) - 1

    def close_span(self, idx: int):
        self.out[idx] = self.out[idx]._replace(span_end=self.i)

    def literal(self, start: int, end: int, kind: str = "string"):
        if start >= end:
            return
        for m in _NONSPACE.finditer(self.src, start, end):
            self.out.append(Token(kind, m.group(), m.start(), m.end()))

    # -- command context ---------------------------------------------------------------------------------
    def commands(self, closer: str | None = None, array: bool = False):
        """Read commands until `closer` (')' or '`') at this level, or the end of input."""
        src = self.src
        cmd_pos = not array    # the next word may be a reserved word, an assignment or a command name
        header = None          # for/select/case waiting for its `in`
        name_next = False      # the next word is a loop variable, case subject or function name
        in_cond = after_redir = False
        parens = case_open = 0
        cmd_name = None
        while self.i < self.n:
            i, c = self.i, src[self.i]
            if c in " \t\r":
                self.i += 1
            elif c == "\\" and src.startswith("\n", i + 1):
                self.i += 2
            elif c == "\n":
                self.emit("sep", "\n", i, i + 1)
                self.i += 1
                self.read_heredocs()
                cmd_pos, cmd_name, after_redir = not array, None, False
            elif c == "#" and (i == 0 or src[i - 1] in " \t\n;&|()<>"):
                j = src.find("\n", i)
                j = self.n if j < 0 or j > self.n else j
                self.emit("comment", src[i:j], i, j)
                self.i = j
            elif closer == "`" and c == "`":
                self.emit("close", "`", i, i + 1)
                self.i += 1
                return
            elif c == ")" and closer == ")" and parens == 0 and case_open == 0:
                self.emit("close", ")", i, i + 1)
                self.i += 1
                return
            elif m := REDIRECTION_RE.match(src, i, self.n):
                if m.group(2) in "<>" and not m.group(1) and not m.group(3) and src.startswith("(", m.end()):
                    self.substitution(m.group(2) + "(", i, m.end() + 1)
                    cmd_pos = False
                    continue
                self.emit("redir", m.group(), i, m.end())
                self.i = m.end()
                if m.group(2) in ("<<", "<<-"):
                    self.skip_blanks()
                    self.heredoc_word(m.group(2) == "<<-", len(self.out) - 1)
                else:
                    after_redir = True
            elif c in "&;|":
                op = next(o for o in _CONTROL_OPS if src.startswith(o, i))
                self.emit("sep" if op == ";" else "op", op, i, i + len(op))
                self.i += len(op)
                cmd_pos, cmd_name = not array, None
            elif c == "(":
                last = self.out[-1] if self.out else None
                arith_for = last is not None and last.kind == "keyword" and last.text == "for"
                if src.startswith("((", i) and (cmd_pos or arith_for) and self.depth < _MAX_DEPTH:
                    k = self.emit("open", "((", i, i + 2)
                    self.i += 2
                    self.arith("))")
                    self.close_span(k)
                    cmd_pos, name_next, header = False, False, None
                else:
                    self.emit("op", "(", i, i + 1)
                    self.i += 1
                    parens += 1
                    cmd_pos = not array
            elif c == ")":
                self.emit("op", ")", i, i + 1)
                self.i += 1
                parens = max(0, parens - 1)
                cmd_pos = not array
            else:
                if (cmd_pos or cmd_name in DECLARATION_BUILTINS) and not after_redir:
                    m = _ASSIGN_RE.match(src, i, self.n)
                    if m:
                        self.assignment(m)
                        continue
                w = self.keyword(cmd_pos and not after_redir, in_cond, header is not None and not name_next)
                if w is not None:
                    if w == "[[":
                        in_cond = True
                    elif w == "]]":
                        in_cond = False
                    elif w == "case":
                        case_open += 1
                    elif w == "esac":
                        case_open = max(0, case_open - 1)
                    if w in ("for", "select", "case", "function"):
                        name_next, header = True, (None if w == "function" else w)
                        cmd_pos = False
                    elif w == "in":
                        cmd_pos, header = header == "case", None
                    else:
                        cmd_pos = w in _LIST_STARTERS
                    continue
                start = i
                self.word(closer)
                if self.i == start:  # a character no branch above takes; never loop on it
                    self.emit("word", c, i, i + 1)
                    self.i += 1
                if after_redir:
                    after_redir = False
                elif name_next:
                    name_next = False
                    cmd_pos = header is None  # after `function NAME` a body follows
                elif cmd_pos:
                    cmd_name = src[start:self.i]
                    cmd_pos = False

    def _word_is(self, i: int, word: str) -> bool:
        j = i + len(word)
        return j >= self.n or self.src[j] in _METACHARS

    def keyword(self, cmd_pos: bool, in_cond: bool, expect_in: bool) -> str | None:
        """Emit and return the reserved word at self.i if bash would read one there."""
        m = _WORD_RE.match(self.src, self.i, self.n)
        w = m.group() if m else ""
        if w not in RESERVED or not self._word_is(self.i, w):
            return None
        ok = (w == "in" and expect_in) or (w == "]]" and in_cond) or (cmd_pos and w not in ("in", "]]"))
        if not ok:
            return None
        self.emit("keyword", w, self.i, self.i + len(w))
        self.i += len(w)
        return w

    def skip_blanks(self):
        while self.i < self.n and self.src[self.i] in " \t":
            self.i += 1

    def assignment(self, m):
        k = self.emit("assign", _ws_free(m.group()), m.start(), m.end())
        self.i = m.end()
        if self.src.startswith("(", self.i) and self.depth < _MAX_DEPTH:
            p = self.emit("open", "(", self.i, self.i + 1)
            self.i += 1
            self.depth += 1
            self.commands(")", array=True)
            self.depth -= 1
            self.close_span(p)
        elif self.i < self.n and self.src[self.i] not in _METACHARS:
            self.word(None)
        self.close_span(k)

    def heredoc_word(self, strip_tabs: bool, redir: int):
        start = self.i
        self.word(None)
        raw = self.src[start:self.i]
        quoted = any(q in raw for q in "'\"\\")
        delim = re.sub(r"\\(.)", r"\1", raw).replace("'", "").replace('"', "")
        if raw:
            self.heredocs.append((delim, strip_tabs, quoted, redir))

    def read_heredocs(self):
        """Here-document bodies start after the newline that ends their command."""
        pending, self.heredocs = self.heredocs, []
        for delim, strip_tabs, quoted, redir in pending:
            start = pos = self.i
            body_end = after = self.n
            while pos < self.n:
                j = self.src.find("\n", pos, self.n)
                j = self.n if j < 0 else j
                line = self.src[pos:j]
                if (line.lstrip("\t") if strip_tabs else line) == delim:
                    body_end, after = pos, min(j + 1, self.n)
                    break
                pos = j + 1
            if quoted:
                self.literal(start, body_end)
            else:
                saved_n, self.n = self.n, body_end
                self.double_quoted(None)
                self.n = saved_n
                self.heredocs = []
            if after > body_end:  # the delimiter line closes the body and ends the command
                self.emit("close", delim, body_end, after - 1)
                self.emit("sep", "\n", after - 1, after)
            self.i = after
            self.out[redir] = self.out[redir]._replace(span_end=after)

    # -- words -------------------------------------------------------------------------------------------
    def word(self, closer: str | None):
        src, n = self.src, self.n
        lit = self.i
        while self.i < n:
            c = src[self.i]
            if c in _METACHARS or (c == "`" and closer == "`"):
                break
            if c == "\\":
                if src.startswith("\n", self.i + 1):
                    self.literal(lit, self.i, "word")
                    self.i += 2
                    lit = self.i
                else:
                    self.i += 2
            elif c in "'\"$`":
                if c == "$" and not self._dollar_expands():
                    self.i += 1
                    continue
                self.literal(lit, self.i, "word")
                if c == "'":
                    self.single_quoted("'")
                elif c == '"':
                    self.double_quoted('"')
                elif c == "$":
                    self.dollar()
                else:
                    self.substitution("`", self.i, self.i + 1)
                lit = self.i
            else:
                self.i += 1
        self.i = min(self.i, n)
        self.literal(lit, self.i, "word")

    def _dollar_expands(self) -> bool:
        nxt = self.src[self.i + 1:self.i + 2]
        # bash names are ASCII ([A-Za-z_]); str.isalpha() would also accept e.g. "À", which is literal text
        return bool(nxt) and (nxt in "({['\"" or nxt in SPECIAL_PARAMS or bool(_NAME_RE.match(nxt)))

    def single_quoted(self, opener: str):
        i = self.i
        j = self.src.find("'", i + len(opener), self.n)
        if opener == "$'":  # ANSI-C quoting allows \'
            j = i + 2
            while j < self.n and self.src[j] != "'":
                j += 2 if self.src[j] == "\\" else 1
            j = j if j < self.n else -1
        end = self.n if j < 0 else j
        k = self.emit("open", opener, i, i + len(opener))
        self.literal(i + len(opener), end)
        if j >= 0:
            self.emit("close", "'", j, j + 1)
        self.i = self.n if j < 0 else j + 1
        self.close_span(k)

    def double_quoted(self, closer: str | None, opener: str = '"'):
        """Inside "...", $"..." (closer '"') or an unquoted here-document body (closer None)."""
        src = self.src
        k = None
        if closer:
            k = self.emit("open", opener, self.i, self.i + len(opener))
            self.i += len(opener)
        lit = self.i
        while self.i < self.n:
            c = src[self.i]
            if c == "\\":
                self.i += 2
            elif closer and c == closer:
                self.literal(lit, self.i)
                self.emit("close", c, self.i, self.i + 1)
                self.i += 1
                self.close_span(k)
                return
            elif c == "$" and self._dollar_expands() and src[self.i + 1] not in "'\"":
                self.literal(lit, self.i)
                self.dollar()
                lit = self.i
            elif c == "`":
                self.literal(lit, self.i)
                self.substitution("`", self.i, self.i + 1)
                lit = self.i
            else:
                self.i += 1
        self.i = min(self.i, self.n)
        self.literal(lit, self.i)
        if k is not None:
            self.close_span(k)

    def dollar(self):
        src, i = self.src, self.i
        nxt = src[i + 1:i + 2]
        if self.depth >= _MAX_DEPTH:
            self.emit("word", "$", i, i + 1)
            self.i += 1
        elif src.startswith("$((", i):
            k = self.emit("open", "$((", i, i + 3)
            self.i += 3
            self.depth += 1
            self.arith("))")
            self.depth -= 1
            self.close_span(k)
        elif nxt == "(":
            self.substitution("$(", i, i + 2)
        elif nxt == "[":
            k = self.emit("open", "$[", i, i + 2)
            self.i += 2
            self.depth += 1
            self.arith("]")
            self.depth -= 1
            self.close_span(k)
        elif nxt == "{":
            j, depth = i + 2, 1
            while j < self.n and depth:
                ch = src[j]
                if ch == "\\":
                    j += 1
                elif ch == "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
                j += 1
            j = min(j, self.n)
            self.emit("var", _ws_free(src[i:j]), i, j)
            self.i = j
        elif nxt == "'":
            self.single_quoted("$'")
        elif nxt == '"':
            self.double_quoted('"', opener='$"')
        elif nxt in SPECIAL_PARAMS:
            self.emit("var", src[i:i + 2], i, i + 2)
            self.i += 2
        else:
            m = _NAME_RE.match(src, i + 1)
            self.emit("var", "$" + m.group(), i, m.end())
            self.i = m.end()

    def substitution(self, opener: str, start: int, body: int):
        if self.depth >= _MAX_DEPTH:
            self.emit("word", opener, start, body)
            self.i = body
            return
        k = self.emit("open", opener, start, body)
        self.i = body
        self.depth += 1
        self.commands("`" if opener == "`" else ")")
        self.depth -= 1
        self.close_span(k)

    def arith(self, end: str):
        src, parens = self.src, 0
        while self.i < self.n:
            i, c = self.i, src[self.i]
            if c in " \t\n\r\\":
                self.i += 1
            elif parens == 0 and src.startswith(end, i):
                self.emit("close", end, i, i + len(end))
                self.i += len(end)
                return
            elif c == "$" and self._dollar_expands():
                self.dollar()
            elif c == '"':
                self.double_quoted('"')
            elif c == "'":
                self.single_quoted("'")
            elif c == "`":
                self.substitution("`", i, i + 1)
            elif m := _NAME_RE.match(src, i):
                self.emit("var", m.group(), i, m.end())
                self.i = m.end()
            elif m := _NUM_RE.match(src, i):
                self.emit("word", m.group(), i, m.end())
                self.i = m.end()
            else:
                if c == "(":
                    parens += 1
                elif c == ")":
                    parens = max(0, parens - 1)
                op = next((o for o in _ARITH_OPS if src.startswith(o, i)), c)
                self.emit("op", op, i, i + len(op))
                self.i += len(op)
