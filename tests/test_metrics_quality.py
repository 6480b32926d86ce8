"""harness.eval.metrics.quality.quality_metrics: the API the evaluator calls, its metric names and shapes."""
import shutil

import jsonschema
import pytest

from harness.errors import UsageError
from harness.eval.metrics import quality
from harness.report import schema

STABLE = ("eval.syntax.bashlex", "eval.syntax.bash_n", "eval.shellcheck_clean", "eval.bleu", "eval.codebleu")
PROGS = ['x=1\necho "$x"\n', "if true; then\n  echo hi\n", 'for f in *; do echo "$f"; done\n', "echo $foo\n",
         "case $1 in a) echo a;; esac\n", 'x=1\necho "$x"\n']
REFS = ['x=1\necho "$x"\n', None, 'for g in *; do echo "$g"; done\n', "ls -la /tmp | wc -l\n", None,
        'x=1\necho "$x"\n']
needs_shellcheck = pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")


def by_name(result):
    return {m["name"]: m for m in result["metrics"]}


@needs_shellcheck
def test_metrics_per_sample_and_info():
    r = quality.quality_metrics(PROGS, REFS, progress=False)
    m = by_name(r)
    assert set(STABLE) <= set(m)
    item_schema = schema()["properties"]["metrics"]["items"]
    for metric in r["metrics"]:
        jsonschema.validate(metric, item_schema)
    assert m["eval.syntax.bash_n"]["value"] == pytest.approx(5 / 6)
    assert m["eval.syntax.bashlex"]["value"] == pytest.approx(4 / 5)   # the case program is unsupported
    assert m["eval.syntax.bashlex_unsupported_rate"]["value"] == pytest.approx(1 / 6)
    assert m["eval.shellcheck_clean"]["value"] == pytest.approx(4 / 6)
    assert 0.0 < m["eval.bleu"]["value"] < 1.0 and 0.0 < m["eval.codebleu"]["value"] < 1.0
    assert m["eval.bleu"]["labels"]["pairs"] == 4

    ps = r["per_sample"]
    assert len(ps) == len(PROGS) and [p["index"] for p in ps] == list(range(len(PROGS)))
    assert ps[0]["bleu"] == 1.0 and ps[0]["codebleu"]["codebleu"] == 1.0
    assert ps[1]["bash_n"] == ps[1]["bashlex"] == "syntax_error" and ps[1]["codebleu"] is None
    assert (ps[4]["bashlex"], ps[4]["bashlex_construct"]) == ("unsupported", "case")
    assert ps[3]["shellcheck"]["codes"] == ["SC2086", "SC2154"]

    info = r["info"]
    assert info["bleu"]["signature"].startswith("nrefs:1|") and "tok:none" in info["bleu"]["signature"]
    assert info["codebleu"]["weights"] == {"ngram": 0.25, "weighted_ngram": 0.25, "syntax": 0.25, "dataflow": 0.25}
    assert info["tools"]["shellcheck"] and info["tools"]["bashlex"] == "0.18"
    assert info["syntax"]["agreement_on_judged"]["bashlex_error_bash_ok"] == 0
    assert info["programs_per_s"] > 0


def test_no_references_and_no_shellcheck():
    r = quality.quality_metrics(PROGS[:3], [None] * 3, shellcheck=False, progress=False)
    m = by_name(r)
    assert m["eval.bleu"]["value"] is None and m["eval.codebleu"]["value"] is None
    assert m["eval.shellcheck_clean"]["value"] is None and "not run" in m["eval.shellcheck_clean"]["note"]
    assert r["info"]["shellcheck"] == {"run": False} and r["per_sample"][0]["shellcheck"] is None


def test_bad_calls(monkeypatch):
    with pytest.raises(ValueError):
        quality.quality_metrics(["ls"], [], shellcheck=False)
    monkeypatch.setattr(quality.sc, "shellcheck_path", lambda: None)
    with pytest.raises(UsageError, match="shellcheck"):
        quality.quality_metrics(["ls"], [None])
