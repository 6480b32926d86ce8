"""How one completion becomes a judged run (harness/eval/execute.py): what the judge and the candidate each get, the
MultiPL-E stop-token cut and split, and how results are classified."""
import pytest

from harness.sandbox import sandbox as sb
from harness.eval.execute import build, classify, program, split_function
from harness.sandbox.supervise import RunResult
from harness.eval.tasks import Task

PROMPT = "#!/bin/bash\n# Add two numbers.\n# $1 and $2 are integers\nadd() {\n"
TESTS = '}\n\ncandidate() {\n    add "$@"\n}\n\nset -e\nrun_test() {\n    [[ $(candidate "1" "2") = "3" ]]\n}\n\nrun_test'
ME = Task("add", "multipl_e", PROMPT, "multipl_e", tests=TESTS, stop_tokens=("\n}",))
OWN = Task("a/b", "a", "#!/bin/bash\n# Print hi.\n", "own", test="./candidate.sh\n", canonical="echo hi\n",
           files=(("in.txt", b"x", 0o644),))


def test_multipl_e_completion_is_cut_at_the_stop_tokens_before_it_runs():
    forged = "    echo $(( $1 + $2 ))\n}\nexit 0\n"
    assert program(ME, forged) == PROMPT + "    echo $(( $1 + $2 ))" + "\n" + TESTS
    job = build(ME, forged)
    assert b"exit 0" not in job.candidate


def test_multipl_e_runs_split_at_its_function():
    assert split_function(ME) == "add"
    job = build(ME, "    echo $(( $1 + $2 ))")
    judge = job.private["program.sh"].decode()
    assert judge == PROMPT + '    ./candidate.sh "$@"\n' + TESTS  # the completion never runs as the judge
    assert job.candidate.decode() == PROMPT + '    echo $(( $1 + $2 ))\n}\nadd "$@"\n'
    assert job.argv == ["bash", f"{sb.JUDGE_DIR}/program.sh"]


@pytest.mark.parametrize("prompt,tests", [(PROMPT + "# trailing comment\n", TESTS), (PROMPT, "echo no brace\n")])
def test_multipl_e_of_another_shape_runs_as_one_program(prompt, tests):
    t = Task("x", "multipl_e", prompt, "multipl_e", tests=tests)
    assert split_function(t) is None
    job = build(t, "  :")
    assert not job.private and job.candidate.decode() == program(t, "  :")


def test_own_format_keeps_the_tests_private_and_the_files_in_the_work_dir():
    job = build(OWN, "echo hi\n")
    assert job.private == {"test.sh": b"./candidate.sh\n"}
    assert job.files == {"in.txt": (b"x", 0o644)} and job.candidate == OWN.prompt.encode() + b"echo hi\n"


@pytest.mark.parametrize("stderr,status", [
    (b"x.sh: line 3: syntax error near unexpected token `fi'", "syntax_error"),
    (b"x.sh: line 2: unexpected EOF while looking for matching `\"'", "syntax_error"),  # bash 5.2
    (b"FAIL add: stdout was", "failed"),
])
def test_classify(stderr, status):
    assert classify(RunResult(1, b"", stderr, 0.1)) == status


def test_an_oom_kill_is_never_a_pass():
    assert classify(RunResult(0, b"", b"", 0.1, oom_kills=1)) == "oom"
