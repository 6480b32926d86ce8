"""Loading the project's suite and MultiPL-E problem files, and reading samples without crashing on bad input."""
import json
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.eval.tasks import MAX_COMPLETION_BYTES, load_suite, read_samples, suite_hash
from reference.stops import cut_at_stop

ROOT = Path(__file__).resolve().parent.parent
MULTIPL_E = ROOT / "fixtures" / "multipl_e" / "sample_problems.json"


def make_suite(root: Path) -> Path:
    (root / "suite.json").write_text(json.dumps({"name": "mini", "version": "0.1.0"}))
    t = root / "arithmetic" / "add"
    t.mkdir(parents=True)
    (t / "prompt.sh").write_text("#!/bin/bash\n# Print the sum of the two integer arguments.\n")
    (t / "solution.sh").write_text('echo $(( $1 + $2 ))\n')
    (t / "test.sh").write_text('[ "$(./candidate.sh 2 3)" = 5 ] && [ "$(./candidate.sh -4 1)" = -3 ]\n')
    t = root / "file_handling" / "count_lines"
    (t / "files" / "sub").mkdir(parents=True)
    (t / "prompt.sh").write_text("#!/bin/bash\n# Print the number of lines of the file named by $1.\n")
    (t / "solution.sh").write_text('wc -l < "$1"\n')
    (t / "test.sh").write_text('[ "$(./candidate.sh sub/three.txt)" = 3 ]\n')
    (t / "files" / "sub" / "three.txt").write_text("a\nb\nc\n")
    return root


def test_own_suite_loads_with_name_version_and_hash(tmp_path):
    suite = load_suite(make_suite(tmp_path))
    assert (suite.name, suite.version, suite.format) == ("mini", "0.1.0", "own")
    assert [t.task_id for t in suite.tasks] == ["arithmetic/add", "file_handling/count_lines"]
    add, count = suite.tasks
    assert add.category == "arithmetic" and add.canonical.startswith("echo") and add.files == ()
    assert count.files == (("sub/three.txt", b"a\nb\nc\n", 0o644),)
    h = suite.content_hash
    assert h.startswith("sha256:") and h == suite_hash(tmp_path)
    (tmp_path / "arithmetic" / "add" / "test.sh").write_text("exit 1\n")
    assert suite_hash(tmp_path) != h  # any byte changes the hash


def test_broken_task_directories_become_load_issues(tmp_path):
    make_suite(tmp_path)
    bad = tmp_path / "strings" / "no_test"
    bad.mkdir(parents=True)
    (bad / "prompt.sh").write_text("#!/bin/bash\n# x\n")
    suite = load_suite(tmp_path)
    assert len(suite.tasks) == 2
    assert suite.load_issues == [{"task_id": "strings/no_test", "reason": "test.sh is missing or not UTF-8"}]


@pytest.mark.parametrize("setup, message", [
    (lambda p: None, "no suite.json"),
    (lambda p: (p / "suite.json").write_text("[1"), "not a valid JSON object"),
])
def test_bad_suite_directories_are_usage_errors(tmp_path, setup, message):
    setup(tmp_path)
    with pytest.raises(UsageError, match=message):
        load_suite(tmp_path)


def test_missing_path_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_suite(tmp_path / "nope")


def test_multipl_e_fixture_loads():
    suite = load_suite(MULTIPL_E)
    assert suite.format == "multipl_e" and len(suite.tasks) == 6
    t = suite.tasks[0]
    assert t.task_id == "sh_0_sum_list" and t.stop_tokens == ("\n}",) and t.tests.startswith("}")


def test_multipl_e_jsonl_with_bad_entries(tmp_path):
    good = {"name": "p1", "language": "sh", "prompt": "f() {\n", "tests": "}\nf", "stop_tokens": ["\n}"]}
    lines = [json.dumps(good), "{not json", json.dumps([1]), json.dumps({**good, "tests": None}),
             json.dumps({**good, "language": "py"}), json.dumps(good), json.dumps({**good, "name": "p2"})]
    p = tmp_path / "probs.jsonl"
    p.write_text("\n".join(lines) + "\n")
    suite = load_suite(p)
    assert [t.task_id for t in suite.tasks] == ["p1", "p2"]
    reasons = [i["reason"] for i in suite.load_issues]
    assert reasons[0].startswith("malformed JSON")
    assert "not a JSON object" in reasons
    assert any("tests" in r for r in reasons)
    assert any("not sh" in r for r in reasons)
    assert "duplicate name (first one kept)" in reasons


def write_samples(path: Path, lines: list) -> Path:
    with path.open("wb") as f:
        for line in lines:
            f.write((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n")
    return path


def test_samples_bad_lines_are_counted_never_fatal(tmp_path):
    known = {"a", "b"}
    p = write_samples(tmp_path / "s.jsonl", [
        {"task_id": "a", "completion": "echo 1"},
        b"{truncated",
        b"\xff\xfe not utf-8",
        {"task_id": "zzz", "completion": "echo"},
        {"task_id": "a"},
        {"task_id": 3, "completion": "x"},
        [1, 2],
        b"",
        b"   ",
        {"task_id": "b", "completion": "x" * (MAX_COMPLETION_BYTES + 1)},
        b'{"task_id": "a", "completion": "\\ud800"}',
        {"task_id": "a", "completion": "echo 2", "extra": {"ignored": True}},
    ])
    s = read_samples(p, known)
    assert [(x.task_id, x.index, x.line) for x in s.samples] == [("a", 0, 1), ("b", 0, 10), ("a", 1, 12)]
    assert s.samples[1].rejected and not s.samples[0].rejected
    assert dict(s.bad) == {"malformed_json": 1, "invalid_utf8": 1, "unknown_task_id": 1, "missing_field": 2,
                           "not_an_object": 1, "completion_too_large": 1, "invalid_unicode": 1}
    assert {e["line"] for e in s.bad_examples} >= {2, 3, 4}
    assert s.per_task()["a"][1].completion == "echo 2"


def test_samples_overlong_line_is_skipped_and_reading_goes_on(tmp_path, monkeypatch):
    import harness.eval.tasks as tasks

    monkeypatch.setattr(tasks, "MAX_LINE_BYTES", 1000)
    p = write_samples(tmp_path / "s.jsonl", [{"task_id": "a", "completion": "y" * 5000},
                                             {"task_id": "a", "completion": "ok"}])
    s = read_samples(p, {"a"})
    assert [x.completion for x in s.samples] == ["ok"] and s.samples[0].line == 2
    assert dict(s.bad) == {"line_too_long": 1}


def test_missing_samples_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        read_samples(tmp_path / "none.jsonl", set())


def test_cut_at_stop():
    assert cut_at_stop("  echo 1\n}\nfoo() {", ("\n}", "\nfoo")) == "  echo 1"
    assert cut_at_stop("abc", ()) == "abc"
