"""Mutation testing for bash task suites: small deterministic edits of a canonical solution ("mutants"),
each run against the task's tests. A test that rejects none of them checks nothing.

Operators (classic mutation-testing set, adapted to shell): comparison swaps (-eq/-ne, -lt/-ge, -gt/-le,
==/!=), arithmetic operators inside $((...))/((...)) and awk programs, integer constants +-1, &&/||,
deleting a line (leaving ":"), removing a pipeline stage or a case alternative, > vs >>, emptying a string
literal, test flags (-n/-z, -f/-d), negating an if/while condition. Everything is deterministic: the same
source gives the same mutants in the same order.

A mutant's key (operator, description, the text of the line it changes, and "#2", "#3", ... for repeats) names
it across edits elsewhere in the solution. A suite may record reviewed equivalent mutants (behaviour-preserving
for every input the prompt allows) in mutants-equivalent.json at its root; a task's mutation score is the share
of its other mutants that its tests reject. mutation-scores.json at the root ships every task's score with the
hash of the task folder it was measured on.

    harness mutate [TASKS_DIR] [--task ID] [--cap N] [--json OUT] [--write-scores | --check-scores]

The equivalents and the shipped scores are read and written by mutation_scores.py.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from .metrics.bash_tokens import tokenize

OPERATORS = ("compare", "arith", "logic", "delete_line", "pipe_stage", "case_pattern", "test_flag", "negate",
             "redirect", "string", "constant")

_COMPARE = {"-eq": "-ne", "-ne": "-eq", "-lt": "-ge", "-ge": "-lt", "-gt": "-le", "-le": "-gt",
            "==": "!=", "!=": "=="}
_ARITH = {"+": "-", "-": "+", "*": "/", "/": "*", "%": "*", "+=": "-=", "-=": "+=", "*=": "/=",
          "/=": "*=", "%=": "*=", "++": "--", "--": "++", "<": "<=", "<=": "<", ">": ">=", ">=": ">"}
_TEST_FLAG = {"-n": "-z", "-z": "-n", "-f": "-d", "-d": "-f"}
# Lines whose deletion only breaks the syntax (a trivially killed mutant that tells nothing).
_STRUCTURAL = re.compile(r"^(fi|done|esac|then|do|else|\{|\}|\)|;;)(?=\W|$)|^[A-Za-z_][\w]*\s*\(\)"
                         r"|(\bthen|\bdo|\bin|\{|\|)$|^(if|elif|while|until|for|case)\b|^\}"
                         r"|^[^($]*(\([^)]*)?\)$")  # the last one: a case pattern line such as "-d|'(')"


@dataclass(frozen=True)
class Mutant:
    operator: str
    line: int  # 1-based line of solution.sh
    description: str
    source: str
    key: str = ""  # stable name: "operator: description | changed line" (+ " #n" for the n-th repeat)


@dataclass(frozen=True)
class _Span:
    kind: str  # "comment" | "sq" | "dq" | "arith" | "awk"
    start: int  # [start, end) offsets into the source, quotes excluded
    end: int


def _lex(src: str) -> list[_Span]:
    """Comments, literal strings, arithmetic and awk programs of a bash source, from the shared bash tokenizer
    (eval/metrics/bash_tokens.py). A double-quoted string with expansions counts as code; a single-quoted
    string is an awk program when `awk` stands before it in its pipeline stage or line."""
    spans: list[_Span] = []
    toks = tokenize(src)
    for k, t in enumerate(toks):
        if t.kind == "comment":
            spans.append(_Span("comment", t.start, t.end))
        elif t.kind != "open":
            continue
        elif t.text in ("'", "$'"):
            end = t.span_end - 1 if t.span_end >= 0 else len(src)
            line_start = max(src.rfind("\n", 0, t.start), src.rfind("|", 0, t.start), src.rfind("$(", 0, t.start)) + 1
            spans.append(_Span("awk" if re.search(r"\bawk\b", src[line_start:t.start]) else "sq", t.end, end))
        elif t.text == '"':
            end = t.span_end - 1 if t.span_end >= 0 else len(src)
            if not any(u.kind in ("var", "open") for u in toks[k + 1:] if u.start < end):
                spans.append(_Span("dq", t.end, end))
        elif t.text in ("$((", "(("):
            end = t.span_end - 2 if t.span_end >= 0 else len(src)
            spans.append(_Span("arith", t.end, max(t.end, end)))
    return sorted(spans, key=lambda s: (s.start, s.end))


def _kind_at(spans: list[_Span], pos: int) -> str:
    for s in spans:
        if s.start <= pos < s.end:
            return s.kind
    return "code"


def _awk_strings(src: str, spans: list[_Span]) -> set[int]:
    """Offsets inside "..." literals of awk programs (format strings, where % and / are not operators)."""
    inside: set[int] = set()
    for s in spans:
        if s.kind != "awk":
            continue
        for m in re.finditer(r'"(?:[^"\\\n]|\\.)*"', src[s.start:s.end]):
            inside.update(range(s.start + m.start(), s.start + m.end()))
    return inside


def _stage_end(line: str, i: int) -> int:
    """End of the pipeline stage starting at line[i]: the next |, ;, && or || outside quotes and
    parentheses, an unmatched ")" (the end of an enclosing $(...)), or the line's end (less a "\\")."""
    depth, quote = 0, ""
    while i < len(line):
        c = line[i]
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            if depth == 0:
                return i
            depth -= 1
        elif depth == 0 and (c in "|;" or line.startswith("&&", i)):
            return i
        i += 1
    return -1 if quote else len(line.rstrip(" \\"))


def _pipe_mutations(lines: list[str], offsets: list[int], spans: list[_Span]):
    """(operator, start, end, description) for removing one stage of a pipeline (written on one line or
    continued after a trailing "|") or one alternative of a case pattern ("a | b)")."""
    for no, ln in enumerate(lines, 1):
        base = offsets[no - 1]
        for m in re.finditer(r"(?<![|>])\|(?![|&])", ln):
            b = m.start()
            if _kind_at(spans, base + b) != "code":
                continue
            if ln[b + 1:].strip():
                end = _stage_end(ln, b + 1)
                if end <= b + 1:
                    continue
                stage = ln[b + 1:end].strip()
                if re.match(r"^[^()]*\)", ln[b + 1:]) and not re.search(r"\$\(|`", ln[:b]):
                    yield "case_pattern", base + b, base + end, f"drop case alternative {stage[:50]!r}"
                elif not re.match(r"(while|until|for|if|case|\{|\()\b", stage):
                    yield "pipe_stage", base + b, base + end, f"remove stage {stage[:50]!r}"
            elif no < len(lines):  # the next stage is on the next line
                nxt = lines[no]
                lead = len(nxt) - len(nxt.lstrip())
                end = _stage_end(nxt, lead)
                stage = nxt[lead:end].strip() if end > lead else ""
                if not stage or re.match(r"(while|until|for|if|case|\{|\()\b", stage):
                    continue
                if nxt[end:end + 1] == "|":  # a middle stage: drop "stage |"
                    yield "pipe_stage", offsets[no] + lead, offsets[no] + end + 1, f"remove stage {stage[:50]!r}"
                else:  # the last stage: drop "| <newline> stage"
                    yield "pipe_stage", base + b, offsets[no] + end, f"remove stage {stage[:50]!r}"


def generate(source: str) -> list[Mutant]:
    """Every mutant of `source`, deduplicated, in a fixed order (operator, then position)."""
    spans = _lex(source)
    awk_str = _awk_strings(source, spans)
    lines = source.split("\n")
    offsets = [0]
    for ln in lines:
        offsets.append(offsets[-1] + len(ln) + 1)

    def line_of(pos: int) -> int:
        lo, hi = 0, len(lines)
        while lo < hi:
            mid = (lo + hi) // 2
            if offsets[mid + 1] <= pos:
                lo = mid + 1
            else:
                hi = mid
        return lo + 1

    out: list[Mutant] = []

    def add(op: str, start: int, end: int, new: str, what: str | None = None):
        text = source[:start] + new + source[end:]
        old = source[start:end]
        out.append(Mutant(op, line_of(start), what or f"{old!r} -> {new!r}", text))

    for m in re.finditer(r"(?<![\w-])-(eq|ne|lt|gt|le|ge)\b|(?<![=!<>])(==|!=)(?!=)", source):
        if _kind_at(spans, m.start()) in ("code", "awk") and m.start() not in awk_str:
            add("compare", m.start(), m.end(), _COMPARE[m.group(0)])
    for m in re.finditer(r"\+\+|--|[-+*/%]=|<=|>=|[-+*/%<>]", source):
        k = _kind_at(spans, m.start())
        tok = m.group(0)
        if k == "arith":
            if tok in ("<", ">") and source[m.start():m.start() + 2] in ("<<", ">>"):
                continue
            if source[max(0, m.start() - 1):m.start()] in ("<", ">", "*") and tok in ("<", ">", "*", "<=", ">="):
                continue
        elif k == "awk" and m.start() not in awk_str:
            spaced = source[m.start() - 1:m.start()] == " " and source[m.end():m.end() + 1] == " "
            if not (spaced or len(tok) == 2 and tok[1] in "=+-" and tok not in ("<=", ">=")):
                continue
        else:
            continue
        add("arith", m.start(), m.end(), _ARITH[tok])
    for m in re.finditer(r"&&|\|\|", source):
        if _kind_at(spans, m.start()) in ("code", "awk", "arith") and m.start() not in awk_str:
            add("logic", m.start(), m.end(), "||" if m.group(0) == "&&" else "&&")
    for no, ln in enumerate(lines, 1):
        s = ln.strip()
        start, end = offsets[no - 1], offsets[no - 1] + len(ln)
        crossed = any(sp.start <= end < sp.end or sp.start < start < sp.end for sp in spans if sp.kind != "comment")
        if not s or s.startswith("#") or _STRUCTURAL.search(s) or crossed:
            continue
        # ":" keeps the syntax whole where the line was the only command of a block or a pipeline stage
        indent = ln[:len(ln) - len(ln.lstrip())]
        keep = [] if s.endswith(";;") and ")" in s else [indent + ":"]  # a whole case branch just goes
        text = "\n".join(lines[:no - 1] + keep + lines[no:])
        out.append(Mutant("delete_line", no, f"delete {s[:60]!r}", text))
    for op, a, b, what in _pipe_mutations(lines, offsets, spans):
        add(op, a, b, "", what)
    for m in re.finditer(r"(?<=[\s\[!&|])(-[nzfd])(?=\s)", source):
        before = source[:m.start()].rstrip()
        if _kind_at(spans, m.start()) == "code" and re.search(r"(\[\[?|!|&&|\|\|)$", before):
            add("test_flag", m.start(), m.end(), _TEST_FLAG[m.group(1)])
    for m in re.finditer(r"\b(if|elif|while|until)( ! | )", source):
        if _kind_at(spans, m.start()) != "code":
            continue
        kw, gap = m.group(1), m.group(2)
        if gap == " ! ":
            add("negate", m.start(), m.end(), f"{kw} ")
        elif kw in ("while", "until"):
            add("negate", m.start(), m.end(), ("until " if kw == "while" else "while "))
        else:
            add("negate", m.start(), m.end(), f"{kw} ! ")
    for m in re.finditer(r"(?<![>&\d<-])>>?(?![>&(=])", source):
        if _kind_at(spans, m.start()) == "code":
            add("redirect", m.start(), m.end(), ">" if m.group(0) == ">>" else ">>")
    for s in spans:
        if s.kind in ("sq", "dq"):
            add("string", s.start, s.end, "" if s.end > s.start else "x")
    for m in re.finditer(r"(?<![\w.])\d+(?![\w.])", source):
        fd = source[m.end():m.end() + 1] in ("<", ">") or source[m.start() - 2:m.start()] in (">&", "<&")
        if fd or _kind_at(spans, m.start()) == "comment":  # "2>&1" names file descriptors, not quantities
            continue
        v = int(m.group(0))
        add("constant", m.start(), m.end(), str(v + 1))
        if v > 0:
            add("constant", m.start(), m.end(), str(v - 1))

    seen = {source}
    unique = []
    keys: dict[str, int] = {}
    for mu in sorted(out, key=lambda mu: OPERATORS.index(mu.operator)):
        if mu.source not in seen:
            seen.add(mu.source)
            key = f"{mu.operator}: {mu.description} | {lines[mu.line - 1].strip()}"
            keys[key] = keys.get(key, 0) + 1
            unique.append(Mutant(mu.operator, mu.line, mu.description, mu.source,
                                 key if keys[key] == 1 else f"{key} #{keys[key]}"))
    return unique


def select(mutants: list[Mutant], cap: int | None) -> list[Mutant]:
    """At most `cap` mutants spread over the operators: round-robin over OPERATORS, each operator's mutants
    in an order fixed by a hash of their text (deterministic, and stable under edits elsewhere). No cap: all."""
    if cap is None:
        return list(mutants)
    groups = {op: sorted((m for m in mutants if m.operator == op),
                         key=lambda m: hashlib.sha256(m.source.encode()).hexdigest()) for op in OPERATORS}
    picked: list[Mutant] = []
    while len(picked) < cap and any(groups.values()):
        for op in OPERATORS:
            if groups[op] and len(picked) < cap:
                picked.append(groups[op].pop(0))
    return picked


@dataclass
class TaskMutation:
    task_id: str
    generated: int  # all mutants of the solution
    run: int
    killed: int  # rejected by the tests (recorded equivalents included, see equivalent_killed)
    survivors: list[str]  # keys of the non-equivalent mutants the tests accepted
    equivalent: int = 0  # accepted mutants recorded as equivalent: not part of the score
    equivalent_killed: list[str] = field(default_factory=list)  # recorded as equivalent, yet rejected
    stale_equivalents: list[str] = field(default_factory=list)  # recorded keys that no mutant has any more

    @property
    def score(self) -> float:
        """Share of the non-equivalent mutants run that the tests rejected."""
        n = self.run - self.equivalent
        return self.killed / n if n else 1.0


def mutate_task(task_id: str, solution: str, passes, cap: int | None = 8, stop_early: bool = False,
                equivalent: dict[str, str] | None = None) -> TaskMutation:
    """Run up to `cap` mutants of `solution` (None: all); `passes(completion) -> bool` runs the task's tests.
    `equivalent` maps the keys of reviewed equivalent mutants to the reason."""
    equivalent = equivalent or {}
    all_m = generate(solution)
    chosen = select(all_m, cap)
    r = TaskMutation(task_id, len(all_m), 0, 0, [],
                     stale_equivalents=sorted(set(equivalent) - {m.key for m in all_m}))
    for mu in chosen:
        r.run += 1
        if passes(mu.source):
            if mu.key in equivalent:
                r.equivalent += 1
            else:
                r.survivors.append(mu.key)
        else:
            r.killed += 1
            if mu.key in equivalent:
                r.equivalent_killed.append(mu.key)
            if stop_early:
                break
    return r


def run_suite(suite, executor, cap: int | None = 8, workers: int = 2, stop_early: bool = False,
              progress=None, equivalents: dict[str, dict[str, str]] | None = None) -> list[TaskMutation]:
    """Mutation results for every task of an own-format suite that has a canonical solution, in suite order."""
    from concurrent.futures import ThreadPoolExecutor

    tasks = [t for t in suite.tasks if t.canonical is not None]
    equivalents = equivalents or {}

    def one(task):
        r = mutate_task(task.task_id, task.canonical, lambda c: executor.run(task, c).passed, cap, stop_early,
                        equivalents.get(task.task_id))
        if progress:
            progress(r)
        return r

    with ThreadPoolExecutor(max(1, workers)) as pool:
        return list(pool.map(one, tasks))
