"""harness.eval.metrics.syntax: bash -n and bashlex on known-valid, known-invalid and bashlex-unsupported bash."""
import os
import re

import bashlex
import pytest

from harness.eval.metrics.syntax import bash_n_check, bashlex_check, summarize_bashlex, unsupported_spans

INVALID = {
    "unclosed if": "if true; then\n  echo hi\n",
    "unclosed double quote": 'echo "abc\n',
    "unclosed single quote": "echo 'abc\n",
    "stray fi": "echo a\nfi\n",
    "unclosed command substitution": "x=$(ls\n",
    "unclosed brace group": "f() {\n  echo\n",
    "dangling &&": "ls &&\n",
    "do without loop": "do echo; done\n",
}

# Constructs bashlex 0.18 cannot parse, with how it fails on them (measured here, pinned below).
UNSUPPORTED = {
    "case": ("case $1 in a) echo a;; *) echo b;; esac\n", NotImplementedError),
    "arithmetic_expansion": ("echo $((1 + 2))\n", NotImplementedError),
    "select": ("select x in a b; do echo $x; done\n", NotImplementedError),
    "coproc": ("coproc cat\n", NotImplementedError),
    "time": ("time ls\n", NotImplementedError),
    "conditional": ("if [[ -f /etc/passwd ]]; then echo y; fi\n", bashlex.errors.ParsingError),
    "array_literal": ("a=(1 2 3)\necho ${a[0]}\n", bashlex.errors.ParsingError),
    "arithmetic_for": ("for ((i = 0; i < 3; i++)); do echo $i; done\n", bashlex.errors.ParsingError),
    "and_or_in_substitution": ('p="$(command -v git || true)"\n', bashlex.errors.ParsingError),
    "quoted_heredoc_delimiter": ("cat <<'EOF'\n$HOME\nEOF\n", bashlex.errors.ParsingError),
    "heredoc_body": ("f() {\n  cat <<END\nusage: f <file>\nEND\n}\n", bashlex.errors.ParsingError),
    "nested_backticks": ("d=`basename \\`pwd\\``\n", bashlex.errors.ParsingError),
}

# Where Debian/Ubuntu keep bash scripts (small trees only: walking all of /usr/lib takes seconds).
_ROOTS = ("/usr/bin", "/usr/sbin", "/usr/lib/dpkg", "/usr/share/doc", "/usr/share/bug")
_COMPLETIONS = "/usr/share/bash-completion/completions"  # sourced by bash, so bash code, without a shebang
_BASH_SHEBANG = re.compile(rb"#!\s*(/usr)?/bin/(env\s+)?bash\b")


def real_bash_scripts(limit: int = 80) -> list[str]:
    """Bash scripts the distribution ships (bash shebang, or bash-completion files), sorted by path."""
    paths = []
    for root in _ROOTS + (_COMPLETIONS,):
        for dirpath, _, files in os.walk(root):
            for f in files:
                p = os.path.join(dirpath, f)
                try:
                    if os.path.islink(p) or os.path.getsize(p) > 100_000:
                        continue
                    with open(p, "rb") as fh:
                        if root == _COMPLETIONS or _BASH_SHEBANG.match(fh.read(64)):
                            paths.append(p)
                except OSError:
                    continue
    out = []
    for p in sorted(paths):
        try:
            out.append(open(p, encoding="utf-8").read())
        except (OSError, UnicodeDecodeError):
            continue
    return out[:limit]


@pytest.fixture(scope="module")
def real_scripts():
    scripts = real_bash_scripts()
    if len(scripts) < 5:
        pytest.skip("fewer than 5 bash scripts on this machine")
    return scripts


def test_bash_n_accepts_every_real_script(real_scripts):
    results = bash_n_check(real_scripts, workers=2)
    assert [r.outcome for r in results] == ["ok"] * len(real_scripts)


def test_bashlex_never_calls_a_real_script_a_syntax_error(real_scripts):
    results = [bashlex_check(s) for s in real_scripts]
    assert summarize_bashlex(results)["counts"]["syntax_error"] == 0
    assert {r.outcome for r in results} <= {"ok", "unsupported", "parser_error"}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_flagged_by_both(name):
    src = INVALID[name]
    assert bash_n_check([src])[0].outcome == "syntax_error"
    assert bashlex_check(src).outcome == "syntax_error"


@pytest.mark.parametrize("construct", sorted(UNSUPPORTED))
def test_unsupported_constructs_are_not_errors(construct):
    src, raised = UNSUPPORTED[construct]
    with pytest.raises(raised):  # pins bashlex's behaviour; if it learns the construct, revisit the table
        bashlex.parse(src)
    r = bashlex_check(src)
    assert (r.outcome, r.construct) == ("unsupported", construct)
    assert bash_n_check([src])[0].outcome == "ok"


def test_accuracy_excludes_unsupported():
    progs = ["echo hi\n", INVALID["unclosed if"], UNSUPPORTED["case"][0], UNSUPPORTED["conditional"][0]]
    s = summarize_bashlex([bashlex_check(p) for p in progs])
    assert s["counts"] == {"ok": 1, "syntax_error": 1, "unsupported": 2, "parser_error": 0}
    assert s["accuracy"] == 0.5 and s["unsupported_rate"] == 0.5
    assert s["unsupported_by_construct"] == {"case": 1, "conditional": 1}


def test_empty_and_comment_only_programs_are_valid():
    for src in ("", "\n\n", "#!/bin/bash\n# nothing else\n"):
        assert bashlex_check(src).outcome == "ok"
        assert bash_n_check([src])[0].outcome == "ok"


def test_bashlex_guards_time_and_recursion():
    big = "echo $x; " * 20000
    r = bashlex_check(big, timeout_s=0.05)
    assert r.outcome == "parser_error" and "longer than" in r.message
    assert bashlex_check("echo ok\n").outcome == "ok"  # an interrupted parse leaves bashlex usable
    assert bashlex_check(INVALID["dangling &&"]).outcome == "syntax_error"
    deep = "echo " + "$(" * 300 + "x" + ")" * 300
    assert bashlex_check(deep).outcome in ("ok", "parser_error", "syntax_error")  # never raises


def test_bash_n_never_executes(tmp_path):
    marker = tmp_path / "ran"
    src = f"touch {marker}\necho pwned > {marker}\n"
    assert bash_n_check([src])[0].outcome == "ok"
    assert not marker.exists()


def test_error_inside_an_unsupported_span_is_unsupported_not_error():
    spans = unsupported_spans("x=1\nif [[ $x == 1 ]]; then echo; fi\n")
    assert [(c, a) for a, b, c in spans] == [("conditional", 7)]
