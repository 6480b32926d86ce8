"""`harness eval --samples` on the formats other generators write: human-eval's .jsonl.gz and MultiPL-E's own
completion files (one .json.gz per problem with a `completions` list), each run recording the samples' hash."""
from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from harness.cli import main
from harness.report import load_report

ROOT = Path(__file__).resolve().parent.parent
MULTIPL_E = ROOT / "fixtures" / "multipl_e" / "sample_problems.json"
SAMPLES = ROOT / "fixtures" / "samples" / "multipl_e_reference.jsonl"

pytestmark = [pytest.mark.sandbox,
              pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")]


def score(tmp_path, samples) -> dict:
    out = tmp_path / "r.json"
    assert main(["eval", "--samples", str(samples), "--tasks", str(MULTIPL_E), "--k", "1", "--no-quality",
                 "--out", str(out)]) == 0
    return load_report(out)


def pass1(r):
    return next(m["value"] for m in r["metrics"] if m["name"] == "eval.pass@1")


def test_jsonl_gz_scores_like_jsonl(tmp_path):
    gz = tmp_path / "s.jsonl.gz"
    gz.write_bytes(gzip.compress(SAMPLES.read_bytes()))
    plain, packed = score(tmp_path, SAMPLES), score(tmp_path, gz)
    assert pass1(plain) == pass1(packed)
    assert packed["config"]["samples_sha256"] == hashlib.sha256(gz.read_bytes()).hexdigest()
    assert plain["config"]["samples_sha256"] == hashlib.sha256(SAMPLES.read_bytes()).hexdigest()


def test_multipl_e_completion_files(tmp_path):
    problems = {p["name"]: p for p in json.loads(MULTIPL_E.read_text())}
    by_task: dict[str, list[str]] = {}
    for line in SAMPLES.read_text().splitlines():
        s = json.loads(line)
        by_task.setdefault(s["task_id"], []).append(s["completion"])
    d = tmp_path / "completions"
    d.mkdir()
    for name, comps in by_task.items():  # as MultiPL-E's generation writes them
        rec = {**problems[name], "completions": comps, "temperature": 0.2, "top_p": 0.95, "max_tokens": 512}
        (d / f"{name}.json.gz").write_bytes(gzip.compress(json.dumps(rec).encode()))
    (d / "broken.json.gz").write_bytes(b"not gzip")
    r = score(tmp_path, d)
    assert pass1(r) == pass1(score(tmp_path, SAMPLES))
    assert r["details"]["bad_samples"]["counts"] == {"unreadable": 1}
    assert len(r["config"]["samples_sha256"]) == 64
    one = score(tmp_path, next(d.glob("sh_0*.json.gz")))
    assert one["config"]["samples"].endswith(".json.gz")
