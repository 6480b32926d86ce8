"""harness.eval.metrics.bash_tokens: known answers for each construct, and robustness on arbitrary text."""
from hypothesis import given
from hypothesis import strategies as st

from harness.eval.metrics.bash_tokens import bleu_tokens, tokenize


def kinds(src):
    return [(t.kind, t.text) for t in tokenize(src)]


def test_words_operators_redirections():
    assert kinds("ls -la /tmp 2>&1 | wc -l >> out && echo ok") == [
        ("word", "ls"), ("word", "-la"), ("word", "/tmp"), ("redir", "2>&1"), ("op", "|"), ("word", "wc"),
        ("word", "-l"), ("redir", ">>"), ("word", "out"), ("op", "&&"), ("word", "echo"), ("word", "ok")]


def test_quotes_expansions_and_substitutions():
    assert kinds('echo "hi $USER: $(date +%F)" \'a b\' ${x:-d}') == [
        ("word", "echo"), ("open", '"'), ("string", "hi"), ("var", "$USER"), ("string", ":"), ("open", "$("),
        ("word", "date"), ("word", "+%F"), ("close", ")"), ("close", '"'), ("open", "'"), ("string", "a"),
        ("string", "b"), ("close", "'"), ("var", "${x:-d}")]


def test_reserved_words_only_in_command_position():
    toks = kinds("if true; then echo if fi; fi")
    assert ("keyword", "if") == toks[0]
    assert ("word", "if") in toks and ("word", "fi") in toks  # arguments, not keywords
    assert toks[-1] == ("keyword", "fi")


def test_assignments_arrays_loops_and_arithmetic():
    toks = kinds("x=1 y+=2 cmd; a=(p q); for i in 1 2; do (( n++ )); done; echo $((n*2))")
    assert ("assign", "x=") in toks and ("assign", "y+=") in toks and ("assign", "a=") in toks
    assert ("open", "(") in toks and ("close", ")") in toks
    assert ("keyword", "for") in toks and ("keyword", "in") in toks and ("word", "i") in toks
    assert ("open", "((") in toks and ("var", "n") in toks and ("op", "++") in toks
    assert ("open", "$((") in toks and ("close", "))") in toks


def test_declaration_builtins_assign():
    assert ("assign", "z=") in kinds("local z=$1")
    assert ("assign", "PATH=") in kinds('export PATH="$HOME/bin:$PATH"')


def test_heredoc_body_is_data_and_delimiter_closes_it():
    toks = kinds("cat <<EOF\nhello $name\nEOF\necho done\n")
    assert toks[:3] == [("word", "cat"), ("redir", "<<"), ("word", "EOF")]
    assert ("var", "$name") in toks and ("close", "EOF") in toks
    assert toks[-3:-1] == [("word", "echo"), ("word", "done")]  # `done` after the body is an argument
    quoted = kinds("cat <<'EOF'\n$x\nEOF\n")
    assert ("string", "$x") in quoted  # no expansion in a quoted here-document


def test_case_patterns_inside_command_substitution():
    toks = kinds("x=$(case $a in b) echo;; esac)")
    assert toks[-1] == ("close", ")") and ("op", ")") in toks and ("keyword", "esac") in toks


def test_comments_only_at_word_start():
    assert kinds("echo a#b # note") == [("word", "echo"), ("word", "a#b"), ("comment", "# note")]


def test_bleu_tokens_normalise_separators_and_drop_comments():
    a = bleu_tokens("#!/bin/bash\n# say hi\nif true\nthen\n  echo hi\nfi\n\n\n")
    b = bleu_tokens("if true; then echo hi; fi")
    assert a == b == ["if", "true", ";", "then", "echo", "hi", ";", "fi"]
    assert bleu_tokens("x=$(ls\n)") == bleu_tokens("x=$(ls)")
    assert "#" not in " ".join(bleu_tokens("ls # c"))
    assert bleu_tokens("echo # c", keep_comments=True)[-2:] == ["#", "c"]


_PIECES = list(" \t\n;&|()<>$`'\"\\{}[]#=+-*!@?019abxy_") + [
    "$((", "))", "<<EOF\n", "\nEOF\n", "case ", " esac", "[[ ", " ]]", "$(", "${", "for ", " do ", " done"]


@given(st.lists(st.sampled_from(_PIECES), max_size=80).map("".join) | st.text(max_size=80))
def test_tokenize_never_raises_and_offsets_are_sane(src):
    toks = tokenize(src)
    for t in toks:
        assert 0 <= t.start <= t.end <= len(src)
        assert t.kind == "comment" or t.kind == "sep" or not any(c.isspace() for c in t.text)
    assert all(" " not in w for w in bleu_tokens(src))


def test_deep_nesting_does_not_recurse_out():
    for src in ("$(" * 3000, '"`' * 3000, "$((" * 3000, "${" * 5000, "a=(" * 2000):
        assert isinstance(tokenize(src), tuple)


def test_dollar_before_a_non_ascii_letter_is_literal_text():
    # found by hypothesis: "$À" crashed the scanner (bash names are ASCII, so this is no expansion)
    toks = tokenize("echo $À")
    assert [t.text for t in toks if t.text.startswith("$")] and not any(t.kind == "var" for t in toks)
