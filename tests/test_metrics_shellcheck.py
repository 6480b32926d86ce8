"""harness.eval.metrics.shellcheck: clean programs, findings by severity, batching, and the summary."""
import shutil

import pytest

from harness.eval.metrics.shellcheck import shellcheck_programs, shellcheck_version, summarize

pytestmark = pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")

CLEAN = '#!/bin/bash\nset -euo pipefail\nname="${1:-world}"\nprintf "hello %s\\n" "$name"\n'


def test_clean_script_is_clean():
    (r,) = shellcheck_programs([CLEAN])
    assert r.checked and r.clean and r.clean_at_warning and r.findings == ()


def test_unquoted_unassigned_variable_is_not_clean():
    (r,) = shellcheck_programs(["echo $foo\n"])
    assert not r.clean and not r.clean_at_warning
    assert {(f.code, f.level) for f in r.findings} == {(2086, "info"), (2154, "warning")}


def test_style_only_findings_are_clean_at_warning_but_not_clean():
    (r,) = shellcheck_programs(["x=`date`\necho \"$x\"\n"])  # SC2006: legacy backticks (style)
    assert [f.level for f in r.findings] == ["style"]
    assert not r.clean and r.clean_at_warning


def test_syntax_error_is_an_error_finding():
    (r,) = shellcheck_programs(["if true; then\n  echo\n"])
    assert r.count("error") >= 1


def test_findings_go_to_their_own_program_across_batches():
    progs = [CLEAN if i % 3 else "echo $foo\n" for i in range(60)]  # more than two batches
    results = shellcheck_programs(progs, workers=2)
    assert [r.clean for r in results] == [bool(i % 3) for i in range(60)]


def test_summary_counts_and_version():
    s = summarize(shellcheck_programs([CLEAN, "echo $foo\n", "x=`date`\necho \"$x\"\n"]))
    assert s["checked"] == 3 and s["clean_rate"] == pytest.approx(1 / 3)
    assert s["clean_at_warning_rate"] == pytest.approx(2 / 3)
    assert s["findings_by_severity"] == {"error": 0, "warning": 1, "info": 1, "style": 1}
    assert {c["code"] for c in s["top_codes"]} == {"SC2086", "SC2154", "SC2006"}
    assert shellcheck_version() and shellcheck_version()[0].isdigit()
