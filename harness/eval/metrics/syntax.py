"""Syntax accuracy of bash programs, judged two ways and reported separately.

- `bash -n` (the reference: bash's own parser; `-n` reads commands without executing any) in a subprocess
  per program, fed on stdin, with a clean environment and a timeout.
- bashlex 0.18 in-process, with a time limit. bashlex does not implement a good part of bash, and says so in
  two ways, both measured on this machine (tests/test_metrics_syntax.py pins them):
    NotImplementedError for `case`, `$(( ))` and `$[ ]`, `select`, `coproc`, `time`;
    a plain ParsingError, indistinguishable by type from a real error, for `[[ ]]`, array literals `a=(..)`,
      `for ((;;))`, extglob patterns, `&&`/`||` as the last list of a `$( )`, quoted here-document
      delimiters (`<<'EOF'`), here-document bodies inside compound commands and nested backticks.
    (`(( ))` happens to parse, as nested subshells.) docs/metrics.md has the table.
  So an outcome is `unsupported` when bashlex raised NotImplementedError, or when its ParsingError lies inside
  one of those constructs (located with harness.eval.metrics.bash_tokens); `parser_error` when bashlex itself
  crashed (AssertionError, TypeError, RecursionError, time limit...); otherwise `ok` or `syntax_error`.
  Accuracy = ok / (ok + syntax_error); unsupported and parser_error are counted apart, never as errors.
"""
from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import signal
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import bashlex
from reference.bash import bash_n

from .bash_tokens import Token, tokenize

BASHLEX_OUTCOMES = ("ok", "syntax_error", "unsupported", "parser_error")
BASH_N_OUTCOMES = ("ok", "syntax_error", "timeout")
MAX_BASHLEX_CHARS = 200_000  # longer programs are not handed to bashlex (parser_error "too long")

# NotImplementedError messages of bashlex 0.18 -> construct ("type = {pattern}, token = ..." or plain text).
_NIE_CONSTRUCTS = {"pattern": "case", "case command": "case", "case clause": "case", "pattern list": "case",
                   "arithmetic expansion": "arithmetic_expansion", "arithmetic substitution": "arithmetic_expansion",
                   "arithmetic command": "arithmetic_command", "arithmetic for": "arithmetic_for",
                   "select command": "select", "coproc": "coproc", "cond command": "conditional",
                   "time command": "time"}
_EXTGLOB_RE = re.compile(r"(?<![\w$\\])[?*+@!]\(")


@dataclass(frozen=True)
class BashlexResult:
    outcome: str                 # one of BASHLEX_OUTCOMES
    construct: str | None = None  # for unsupported: which construct
    message: str | None = None
    tree: list | None = field(default=None, compare=False, repr=False)  # bashlex nodes when ok


@dataclass(frozen=True)
class BashNResult:
    outcome: str                 # one of BASH_N_OUTCOMES
    message: str | None = None   # first line of bash's stderr (errors, or warnings when ok)


class _Timeout(Exception):
    pass


_BASHLEX_DIR = os.path.dirname(os.path.abspath(bashlex.__file__)) + os.sep


@contextlib.contextmanager
def _time_limit(seconds: float):
    """SIGALRM-based limit; only the main thread can take signals, elsewhere it is a no-op."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def _raise(signum, frame):
        # Raise only inside bashlex's own code: an exception raised in a gc callback or finalizer that
        # happens to run then would be swallowed. Otherwise try again shortly.
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        if frame is not None and frame.f_code.co_filename.startswith(_BASHLEX_DIR):
            raise _Timeout()

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _matching(tokens: list[Token], k: int, opener: str, closer: str) -> int:
    depth = 0
    for j in range(k, len(tokens)):
        t = tokens[j]
        if t.kind == "keyword" and t.text == opener:
            depth += 1
        elif t.kind == "keyword" and t.text == closer:
            depth -= 1
            if depth == 0:
                return t.end
    return tokens[-1].end


def unsupported_spans(src: str, tokens: list[Token] | None = None) -> list[tuple[int, int, str]]:
    """(start, end, construct) of every construct bashlex 0.18 cannot parse, in source offsets."""
    tokens = tokenize(src) if tokens is None else tokens
    spans = []
    for k, t in enumerate(tokens):
        nxt = tokens[k + 1] if k + 1 < len(tokens) else None
        if t.kind == "keyword" and t.text == "[[":
            spans.append((t.start, _matching(tokens, k, "[[", "]]"), "conditional"))
        elif t.kind == "keyword" and t.text == "case":
            spans.append((t.start, _matching(tokens, k, "case", "esac"), "case"))
        elif t.kind == "keyword" and t.text == "select":
            do = next((j for j in range(k, len(tokens)) if tokens[j].kind == "keyword" and tokens[j].text == "do"), k)
            spans.append((t.start, _matching(tokens, do, "do", "done"), "select"))
        elif t.kind == "keyword" and t.text in ("coproc", "time"):
            end = next((u.end for u in tokens[k:] if u.kind == "sep" and u.text == "\n"), len(src))
            spans.append((t.start, end, t.text))
        elif t.kind == "assign" and nxt is not None and nxt.text == "(" and nxt.start == t.end:
            spans.append((t.start, t.span_end, "array_literal"))
        elif t.kind == "open" and t.text == "((":
            after_for = k > 0 and tokens[k - 1].kind == "keyword" and tokens[k - 1].text == "for"
            start = tokens[k - 1].start if after_for else t.start
            spans.append((start, t.span_end, "arithmetic_for" if after_for else "arithmetic_command"))
        elif t.kind == "open" and t.text in ("$((", "$["):
            spans.append((t.start, t.span_end, "arithmetic_expansion"))
        elif t.kind == "open" and t.text in ("$(", "<(", ">("):
            if any(u.kind == "op" and u.text in ("&&", "||") and u.end <= t.span_end for u in tokens[k + 1:]
                   if u.start < t.span_end):
                spans.append((t.start, t.span_end, "and_or_in_substitution"))
        elif t.kind == "open" and t.text == "`" and "\\`" in src[t.end:t.span_end]:
            spans.append((t.start, t.span_end, "nested_backticks"))
        elif t.kind == "redir" and t.text.endswith(("<<", "<<-")) and t.span_end > 0:
            body = src.find("\n", t.end, t.span_end)
            spans.append((t.start if _quoted_delimiter(src, t) else max(body, t.end), t.span_end,
                          "quoted_heredoc_delimiter" if _quoted_delimiter(src, t) else "heredoc_body"))
    for m in _EXTGLOB_RE.finditer(src):
        close = src.find(")", m.end())
        spans.append((m.start(), len(src) if close < 0 else close + 1, "extglob"))
    return spans


def _quoted_delimiter(src: str, redir: Token) -> bool:
    m = re.match(r"[ \t]*([^\s;&|()<>]+)", src[redir.end:redir.end + 200])
    return bool(m) and any(q in m.group(1) for q in "'\"\\")


def _error_offset(src: str, err: bashlex.errors.ParsingError) -> int | None:
    """bashlex reports positions in the string it was parsing: a suffix of src, or a substitution's text."""
    s = getattr(err, "s", None)
    pos = getattr(err, "position", None)
    if not isinstance(s, str) or not isinstance(pos, int):
        return None
    if src.endswith(s):
        return len(src) - len(s) + pos
    at = src.find(s)
    return at + pos if at >= 0 else None


def _classify_parsing_error(src: str, err: bashlex.errors.ParsingError) -> BashlexResult:
    msg = str(err)
    m = re.search(r"here-document .* \(wanted (.+)\)", msg)
    if m and any(q in m.group(1)[1:-1] for q in "'\"\\"):
        return BashlexResult("unsupported", "quoted_heredoc_delimiter", msg)
    spans = unsupported_spans(src)
    at = _error_offset(src, err)
    if at is not None:
        hits = [c for a, b, c in spans if a <= at <= b]
        if hits:
            return BashlexResult("unsupported", hits[-1], msg)  # innermost (latest-starting) construct
    if "looking for matching" in msg:
        # A quoted here-document delimiter inside $( ) makes bashlex lose the closing paren and report EOF.
        subs = [(a, b) for a, b, c in spans if c == "quoted_heredoc_delimiter"]
        for t in tokenize(src):
            if t.kind == "open" and t.text in ("$(", "`", "<(", ">(") and any(t.start < a < t.span_end for a, _ in subs):
                return BashlexResult("unsupported", "quoted_heredoc_delimiter", msg)
    return BashlexResult("syntax_error", None, msg)


def _nie_construct(err: NotImplementedError) -> str:
    msg = str(err)
    m = re.match(r"type = \{([^}]*)\}", msg)
    key = m.group(1) if m else msg
    return _NIE_CONSTRUCTS.get(key, key or "unknown")


def _forget_stale_eof_lexer():
    """bashlex 0.18 shares one EOF token between parses and yacc attaches the failing lexer to it only once,
    so every later "unexpected EOF" would report the text of the first failing parse."""
    eof = getattr(bashlex.tokenizer, "eoftoken", None)
    if eof is not None and "lexer" in getattr(eof, "__dict__", {}):
        del eof.lexer


def bashlex_check(src: str, timeout_s: float = 5.0) -> BashlexResult:
    """Parse `src` with bashlex and classify the outcome (see the module docstring). bashlex keeps global
    state: call this from one thread at a time."""
    if len(src) > MAX_BASHLEX_CHARS:
        return BashlexResult("parser_error", None, f"too long for bashlex ({len(src)} > {MAX_BASHLEX_CHARS} chars)")
    if all(t.kind in ("comment", "sep") for t in tokenize(src)):
        return BashlexResult("ok", None, "empty program", [])  # bashlex 0.18 crashes on these; bash accepts them
    _forget_stale_eof_lexer()
    try:
        with _time_limit(timeout_s):
            tree = bashlex.parse(src)
        return BashlexResult("ok", None, None, tree)
    except NotImplementedError as e:
        return BashlexResult("unsupported", _nie_construct(e), str(e)[:200])
    except bashlex.errors.ParsingError as e:
        return _classify_parsing_error(src, e)
    except _Timeout:
        return BashlexResult("parser_error", None, f"bashlex took longer than {timeout_s} s")
    except RecursionError:
        return BashlexResult("parser_error", None, "bashlex exceeded the recursion limit")
    except Exception as e:  # noqa: BLE001 - bashlex 0.18 has internal bugs (AssertionError, TypeError...)
        return BashlexResult("parser_error", None, f"bashlex crashed: {type(e).__name__}: {str(e)[:160]}")


@functools.lru_cache(maxsize=1)
def bash_path() -> str | None:
    return shutil.which("bash")


@functools.lru_cache(maxsize=1)
def bash_version() -> str | None:
    exe = bash_path()
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout
    m = re.search(r"version (\S+)", out)
    return m.group(1) if m else out.splitlines()[0] if out else None


def _bash_n_one(src: str, timeout_s: float) -> BashNResult:
    ok, line = bash_n(src, timeout_s, bash_path())
    return BashNResult("timeout" if ok is None else "ok" if ok else "syntax_error", line or None)


def bash_n_check(programs: list[str], workers: int = 2, timeout_s: float = 10.0, progress=None) -> list[BashNResult]:
    """`bash -n` on each program (never executes it), `workers` subprocesses at a time."""
    if bash_path() is None:
        raise FileNotFoundError("bash not found on PATH")
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        out = []
        for r in pool.map(lambda s: _bash_n_one(s, timeout_s), programs):
            out.append(r)
            if progress is not None:
                progress(1)
        return out


def summarize_bashlex(results: list[BashlexResult]) -> dict:
    counts = {k: sum(r.outcome == k for r in results) for k in BASHLEX_OUTCOMES}
    judged = counts["ok"] + counts["syntax_error"]
    by_construct: dict[str, int] = {}
    for r in results:
        if r.outcome == "unsupported":
            by_construct[r.construct] = by_construct.get(r.construct, 0) + 1
    return {"counts": counts, "accuracy": counts["ok"] / judged if judged else None,
            "unsupported_rate": counts["unsupported"] / len(results) if results else None,
            "parser_error_rate": counts["parser_error"] / len(results) if results else None,
            "unsupported_by_construct": dict(sorted(by_construct.items(), key=lambda kv: -kv[1]))}


def summarize_bash_n(results: list[BashNResult]) -> dict:
    counts = {k: sum(r.outcome == k for r in results) for k in BASH_N_OUTCOMES}
    return {"counts": counts, "accuracy": counts["ok"] / len(results) if results else None}

