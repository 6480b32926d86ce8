"""harness.eval.metrics.codebleu and its parts: identity, renaming, known edges and subtrees, weights."""
import pytest

from harness.eval.metrics.bash_dataflow import dataflow
from harness.eval.metrics.bash_tree import parse, subtrees
from harness.eval.metrics.codebleu import DEFAULT_WEIGHTS, Side, codebleu, corpus_codebleu, pair_stats, token_weight
from harness.eval.metrics.syntax import bashlex_check

SCRIPT = '''#!/bin/bash
count=0
for file in "$@"; do
  if [ -f "$file" ]; then
    lines=$(wc -l < "$file")
    count=$((count + lines))
  fi
done
echo "total: $count"
'''
RENAMED = SCRIPT.replace("count", "n").replace("file", "path").replace("lines", "k")


def test_identity_is_one_with_every_component():
    r = codebleu(SCRIPT, SCRIPT)
    assert r["codebleu"] == 1.0
    assert {k: r[k] for k in DEFAULT_WEIGHTS} == {"ngram": 1.0, "weighted_ngram": 1.0, "syntax": 1.0, "dataflow": 1.0}
    assert r["weights_used"] == DEFAULT_WEIGHTS


def test_tree_sitter_trees_for_programs_bashlex_cannot_parse():
    simple = 'for f in *; do echo "$f"; done'
    assert codebleu(simple, simple)["syntax_source"] == "tree-sitter"
    assert bashlex_check(SCRIPT).outcome == "unsupported"  # $(( )) is beyond bashlex 0.18
    r = codebleu(SCRIPT, simple)
    assert r["syntax_source"] == "tree-sitter" and 0.0 < r["syntax"] < 1.0
    assert codebleu("if then fi", "if then fi")["syntax"] == 1.0  # a tree (with ERROR nodes) even for bad syntax


def test_unrelated_programs_score_low():
    r = codebleu("tar czf /tmp/backup.tgz /home/user", SCRIPT)
    assert r["codebleu"] < 0.2
    assert r["dataflow"] == 0.0


def test_consistent_renaming_keeps_dataflow_and_syntax():
    assert dataflow(RENAMED) == dataflow(SCRIPT)
    r = codebleu(RENAMED, SCRIPT)
    assert r["dataflow"] == 1.0 and r["syntax"] == 1.0 and r["ngram"] < 1.0


def test_known_dataflow_edges():
    assert dataflow('x=1; y=$x; echo "$y $z"') == {
        ("v0", "computedFrom", ()): 1, ("v1", "computedFrom", ("v0",)): 1, ("v0", "comesFrom", ("v0",)): 1,
        ("v1", "comesFrom", ("v1",)): 1, ("v2", "comesFrom", ()): 1}
    assert dataflow('while read -r line; do echo "$line"; done') == {
        ("v0", "input", ()): 1, ("v0", "comesFrom", ("v0",)): 1}
    assert dataflow('for f in "$@"; do gzip "$f"; done') == {
        ("v0", "computedFrom", ("$@",)): 1, ("$@", "comesFrom", ()): 1, ("v0", "comesFrom", ("v0",)): 1}
    assert dataflow("i=0; (( i++ ))")[("v0", "computedFrom", ("v0",))] == 1
    assert dataflow("echo $1 ${#2}") == {("$1", "comesFrom", ()): 1, ("$2", "comesFrom", ()): 1}


def test_known_subtrees():
    # Names and literals are not part of a subtree: two commands of the same shape match fully.
    assert subtrees(parse("cp a b")) == subtrees(parse("mv c d"))
    assert subtrees(parse("cp a b")) != subtrees(parse("cp a b > out"))
    # `;` and a newline separate the same list.
    assert subtrees(parse("a; b")) == subtrees(parse("a\nb"))
    assert subtrees(parse("if a; then b; fi")) == subtrees(parse("if x\nthen\n  y\nfi"))


def test_unavailable_components_are_dropped_and_weights_renormalized():
    r = codebleu("ls -la /tmp", "ls -la /tmp")  # no variables: no data flow to match
    assert r["dataflow"] is None and r["codebleu"] == 1.0
    assert r["weights_used"] == pytest.approx({"ngram": 1 / 3, "weighted_ngram": 1 / 3, "syntax": 1 / 3})
    custom = codebleu(SCRIPT, RENAMED, weights={"ngram": 0.1, "weighted_ngram": 0.1, "syntax": 0.4, "dataflow": 0.4})
    assert custom["codebleu"] > codebleu(SCRIPT, RENAMED)["codebleu"]


def test_keywords_weigh_more():
    assert token_weight("then") == token_weight("echo") == token_weight("2>&1") == token_weight("|") == 1.0
    assert token_weight("grep") == token_weight("foo.txt") == 0.2
    r = codebleu("if false; then printf b; fi", "if true; then echo a; fi")
    assert r["weighted_ngram"] > r["ngram"]


def test_corpus_codebleu_sums_statistics():
    pairs = [(SCRIPT, SCRIPT), (RENAMED, SCRIPT), ("ls", "ls -l")]
    stats = [pair_stats(Side.of(h), Side.of(r)) for h, r in pairs]
    c = corpus_codebleu(stats)
    assert 0.0 < c["codebleu"] < 1.0
    assert c["dataflow_counts"][1] == sum(s.dataflow[1] for s in stats)
    assert c["syntax_sources"] == {"tree-sitter": 3}
    assert corpus_codebleu([pair_stats(Side.of(SCRIPT), Side.of(SCRIPT))])["codebleu"] == 1.0


def test_if_with_several_elif_branches_scores():
    # bashlex 0.18 stores some reserved words of such an if as a list; the AST labels must cope
    src = ('if [ -t 0 ]; then\n    echo terminal\nelif [ -p /dev/stdin ]; then\n    echo pipe\n'
           'elif [ -f /dev/stdin ]; then\n    echo "file $(stat -L -c %s /dev/stdin)"\nfi\n')
    from harness.eval.metrics.codebleu import codebleu as _cb

    assert _cb(src, src)["codebleu"] == 1.0
