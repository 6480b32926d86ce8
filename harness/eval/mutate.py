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

    python -m harness.eval.mutate [TASKS_DIR] [--task ID] [--cap N] [--json OUT] [--write-scores | --check-scores]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

OPERATORS = ("compare", "arith", "logic", "delete_line", "pipe_stage", "case_pattern", "test_flag", "negate",
             "redirect", "string", "constant")

_COMPARE = {"-eq": "-ne", "-ne": "-eq", "-lt": "-ge", "-ge": "-lt", "-gt": "-le", "-le": "-gt",
            "==": "!=", "!=": "=="}
_ARITH = {"+": "-", "-": "+", "*": "/", "/": "*", "%": "*", "+=": "-=", "-=": "+=", "*=": "/=",
          "/=": "*=", "%=": "*=", "++": "--", "--": "++", "<": "<=", "<=": "<", ">": ">=", ">=": ">"}
THRESHOLD = 0.9  # every task's tests reject at least this share of its non-equivalent mutants
EQUIVALENTS = "mutants-equivalent.json"  # at the suite root: {"tasks": {task id: [{"mutant": key, "reason"}]}}
SCORES = "mutation-scores.json"  # at the suite root: what score_file() writes
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
    """Comments, literal strings, arithmetic and awk programs of a bash source (good enough for tidy code).

    A stack tracks where we are: plain code, inside "..." (dq), inside $( ... ) (cmd, with its paren depth)
    or inside ${ ... } (brace). Text inside a double-quoted string with expansions counts as code."""
    spans: list[_Span] = []
    stack: list[list] = []  # [mode, paren depth]
    i, n = 0, len(src)

    def arith(i: int) -> int:
        j = i + (3 if src[i] == "$" else 2)
        depth, k = 2, j
        while k < n and depth:
            depth += {"(": 1, ")": -1}.get(src[k], 0)
            k += 1
        spans.append(_Span("arith", j, max(j, k - 2)))
        return k

    while i < n:
        c = src[i]
        mode = stack[-1][0] if stack else "code"
        if c == "\\":
            i += 2
        elif src.startswith("$((", i) or (mode != "dq" and src.startswith("((", i)):
            i = arith(i)
        elif src.startswith("${", i):
            stack.append(["brace", 0])
            i += 2
        elif src.startswith("$(", i):
            stack.append(["cmd", 0])
            i += 2
        elif mode == "dq":
            if c == '"':
                stack.pop()
            i += 1
        elif mode == "brace" and c == "}":
            stack.pop()
            i += 1
        elif mode == "cmd" and c in "()":
            if c == "(":
                stack[-1][1] += 1
            elif stack[-1][1] == 0:
                stack.pop()
            else:
                stack[-1][1] -= 1
            i += 1
        elif c == "#" and mode != "brace" and (i == 0 or src[i - 1] in " \t\n;|&()"):
            j = src.find("\n", i)
            j = n if j < 0 else j
            spans.append(_Span("comment", i, j))
            i = j
        elif c == "'":
            j = src.find("'", i + 1)
            j = n if j < 0 else j
            line_start = max(src.rfind("\n", 0, i), src.rfind("|", 0, i), src.rfind("$(", 0, i)) + 1
            kind = "awk" if re.search(r"\bawk\b", src[line_start:i]) else "sq"
            spans.append(_Span(kind, i + 1, j))
            i = j + 1
        elif c == '"':
            k = i + 1
            while k < n and src[k] != '"':
                k += 2 if src[k] == "\\" else 1
            if "$" in src[i + 1:k] or "`" in src[i + 1:k]:
                stack.append(["dq", 0])
                i += 1
            else:
                spans.append(_Span("dq", i + 1, k))
                i = k + 1
        else:
            i += 1
    return spans


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


def load_equivalents(root: str | Path) -> dict[str, dict[str, str]]:
    """{task id: {mutant key: reason}} from the suite's EQUIVALENTS file ({} if it has none)."""
    p = Path(root) / EQUIVALENTS
    if not p.is_file():
        return {}
    data = json.loads(p.read_text(encoding="utf-8"))
    return {tid: {e["mutant"]: e["reason"] for e in entries} for tid, entries in data["tasks"].items()}


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


def summary(suite, results: list[TaskMutation], isolation: dict, cap: int | None) -> dict:
    """What a mutation run found, with the suite's identity (name, version, content hash) and the isolation."""
    killed, run = sum(r.killed for r in results), sum(r.run for r in results)
    eq = sum(r.equivalent for r in results)
    return {"suite": suite.describe(), "isolation": isolation, "cap": cap, "mutants_generated":
            sum(r.generated for r in results), "mutants_run": run, "mutants_equivalent": eq,
            "mutants_killed": killed, "mutation_score": killed / (run - eq) if run > eq else None,
            "tasks_without_kill": [r.task_id for r in results if r.killed == 0],
            "tasks_below_threshold": [r.task_id for r in results if r.score < THRESHOLD],
            "tasks": [asdict(r) | {"score": r.score} for r in results]}


def task_hash(root: str | Path, task_id: str) -> str:
    """Content hash of one task's folder (prompt, solution, tests, files): what its score was measured on."""
    from .tasks import suite_hash

    return suite_hash(Path(root) / task_id)


def equivalents_hash(root: str | Path) -> str | None:
    p = Path(root) / EQUIVALENTS
    return "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None


def task_score(root: str | Path, r: TaskMutation) -> dict:
    """One task's entry in the scores file."""
    return {"task_hash": task_hash(root, r.task_id), "mutants": r.generated, "equivalent": r.equivalent,
            "killed": r.killed, "score": round(r.score, 4), "survivors": r.survivors}


def score_file(suite, results: list[TaskMutation], previous: dict | None = None) -> dict:
    """The shipped scores: every task's score over all its mutants, with the suite's name, version and content
    hash and the hash of the equivalents file. Tasks not in `results` keep their entry from `previous`."""
    tasks = dict((previous or {}).get("tasks", {}))
    for r in results:
        if r.run != r.generated:
            raise ValueError(f"{r.task_id}: a scores file needs every mutant run, not {r.run} of {r.generated}")
        tasks[r.task_id] = task_score(suite.source, r)
    ids = [t.task_id for t in suite.tasks if t.task_id in tasks]
    tasks = {tid: tasks[tid] for tid in ids}
    n = sum(t["mutants"] for t in tasks.values())
    eq = sum(t["equivalent"] for t in tasks.values())
    killed = sum(t["killed"] for t in tasks.values())
    return {"about": "mutation score of each task's tests: the share of the non-equivalent mutants of its "
                     "canonical solution (harness/eval/mutate.py, all mutants) that test.sh rejects; written by "
                     "python -m harness.eval.mutate --write-scores",
            "suite": {"name": suite.name, "version": suite.version, "content_hash": suite.content_hash},
            "equivalents_sha256": equivalents_hash(suite.source), "threshold": THRESHOLD,
            "mutants": n, "equivalent": eq, "killed": killed,
            "mutation_score": round(killed / (n - eq), 4) if n > eq else None,
            "min_task_score": min((t["score"] for t in tasks.values()), default=None), "tasks": tasks}


def load_scores(root: str | Path) -> dict | None:
    p = Path(root) / SCORES
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None


def check_scores(root: str | Path, results: list[TaskMutation], shipped: dict | None,
                 compare: bool = True) -> list[str]:
    """Why the measured `results` fall below THRESHOLD, contradict the recorded equivalents or (with `compare`)
    disagree with the shipped scores ([] if none of that)."""
    problems = []
    shipped_tasks = (shipped or {}).get("tasks", {})
    for r in results:
        if r.score < THRESHOLD:
            problems.append(f"{r.task_id}: score {r.score:.3f} < {THRESHOLD}; survivors: {'; '.join(r.survivors)}")
        if r.equivalent_killed:
            problems.append(f"{r.task_id}: recorded as equivalent but rejected: {'; '.join(r.equivalent_killed)}")
        if r.stale_equivalents:
            problems.append(f"{r.task_id}: recorded equivalents no mutant has: {'; '.join(r.stale_equivalents)}")
        s = shipped_tasks.get(r.task_id)
        if not compare:
            continue
        if s is None:
            problems.append(f"{r.task_id}: not in the shipped {SCORES}")
        elif r.run == r.generated and task_score(root, r) != s:
            problems.append(f"{r.task_id}: measured {task_score(root, r)} but {SCORES} ships {s}")
    return problems


def main(argv: list[str] | None = None) -> int:
    from ..errors import UsageError
    from ..report import atomic_write_text
    from .tasks import DEFAULT_TASKS, load_suite

    p = argparse.ArgumentParser(prog="python -m harness.eval.mutate", description=__doc__.split("\n")[0])
    p.add_argument("tasks", nargs="?", default=str(DEFAULT_TASKS), help="task suite directory (default: %(default)s)")
    p.add_argument("--task", action="append", help="only this task id (repeatable)")
    p.add_argument("--cap", type=int, help="at most this many mutants per task, spread over the operators "
                                           "(default: all)")
    p.add_argument("--workers", type=int, default=2, help="parallel sandboxed runs (default 2)")
    p.add_argument("--timeout", type=float, default=5.0, help="wall clock per mutant run in seconds (default 5)")
    p.add_argument("--json", help="write the results (suite name, version, content hash, per-task scores) here")
    p.add_argument("--show", action="store_true", help="list the chosen mutants (with their keys) without running them")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--write-scores", action="store_true",
                   help=f"write the scores of the tasks run into TASKS/{SCORES} (others keep their entry)")
    g.add_argument("--check-scores", action="store_true",
                   help=f"exit 1 unless every task run scores what TASKS/{SCORES} ships, and at least {THRESHOLD}")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="run mutants without bubblewrap (mutants of file-deleting scripts can then do real damage)")
    args = p.parse_args(argv)
    try:
        if (args.cap is not None and args.cap < 1) or args.workers < 1 or not args.timeout > 0:
            raise UsageError("--cap and --workers must be at least 1 and --timeout positive")
        if args.cap is not None and (args.write_scores or args.check_scores):
            raise UsageError("--write-scores and --check-scores need every mutant: leave out --cap")
        suite = load_suite(args.tasks)
        if suite.format != "own":
            raise UsageError(f"{args.tasks} is not a task suite directory with canonical solutions")
        try:
            equivalents = load_equivalents(args.tasks)
        except (ValueError, KeyError, TypeError) as e:
            raise UsageError(f"{Path(args.tasks) / EQUIVALENTS} is malformed ({e}); fix the file") from None
        if args.task:
            unknown = set(args.task) - set(suite.by_id())
            if unknown:
                raise UsageError(f"unknown task id(s): {', '.join(sorted(unknown))}")
            suite.tasks = [t for t in suite.tasks if t.task_id in set(args.task)]
        if args.show:
            for t in suite.tasks:
                eq = equivalents.get(t.task_id, {})
                for mu in select(generate(t.canonical or ""), args.cap):
                    print(f"{t.task_id}\t{mu.operator}\tline {mu.line}\t{mu.key}"
                          + ("\t(equivalent)" if mu.key in eq else ""))
            return 0
        from .execute import Executor
        from ..sandbox.sandbox import Limits, Sandbox

        with Sandbox(limits=Limits(wall_s=args.timeout), unsafe=args.unsafe_no_sandbox,
                     slots=args.workers) as sandbox:
            def show(r: TaskMutation):
                print(f"{r.killed}/{r.run - r.equivalent}\t{r.score:.3f}\t{r.task_id}"
                      + "".join(f"\n\tsurvived: {s}" for s in r.survivors), flush=True)

            results = run_suite(suite, Executor(sandbox), args.cap, args.workers, progress=show,
                                equivalents=equivalents)
            out = summary(suite, results, sandbox.isolation, args.cap)
    except UsageError as e:
        print(f"python -m harness.eval.mutate: error: {e}", file=sys.stderr)
        return 2
    score = out["mutation_score"]
    print(f"killed {out['mutants_killed']}/{out['mutants_run'] - out['mutants_equivalent']} non-equivalent mutants "
          f"({'-' if score is None else f'{score:.1%}'}; {out['mutants_equivalent']} recorded equivalent); tasks "
          f"below {THRESHOLD:.0%}: {len(out['tasks_below_threshold'])}; suite {suite.name} {suite.version} "
          f"{suite.content_hash}", file=sys.stderr)
    if args.json:
        atomic_write_text(args.json, json.dumps(out, indent=1) + "\n")
    if args.write_scores:
        full_suite = load_suite(args.tasks)
        scores = score_file(full_suite, results, load_scores(args.tasks))
        atomic_write_text(Path(args.tasks) / SCORES, json.dumps(scores, indent=1) + "\n")
        print(f"wrote {Path(args.tasks) / SCORES}: {len(scores['tasks'])} of {len(full_suite.tasks)} tasks",
              file=sys.stderr)
    problems = check_scores(args.tasks, results, load_scores(args.tasks), compare=args.check_scores)
    for x in problems:
        print(f"  {x}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
