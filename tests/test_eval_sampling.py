"""`harness eval` times its sampling (eval.sampling_*), and `--generate-only` generates and writes the samples
and an unscored report without running a program: on a tiny random reference checkpoint made here."""
from __future__ import annotations

import json
import shutil

import pytest

import model_fixtures as mf
from harness.cli import main
from harness.report import load_report, scored
from test_eval_cli import make_suite

SAMPLING = ("eval.sampling_s", "eval.sampling_samples", "eval.sampling_tokens", "eval.sampling_tokens_per_s",
            "eval.sampling_samples_per_s", "eval.sampling_decode_tokens_per_s", "eval.sampling_first_token_s",
            "eval.sampling_call_s")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return mf.reference_checkpoint(tmp_path_factory.mktemp("ref"))


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    return make_suite(tmp_path_factory.mktemp("tasks") / "mini")


def no_programs(monkeypatch):
    """No bubblewrap on this 'machine', and running any program fails the test."""
    import harness.sandbox.sandbox as sb

    real = sb._which
    monkeypatch.setattr(sb, "_which", lambda name: None if name == "bwrap" else real(name))

    def refuse(*a, **k):
        raise AssertionError("--generate-only must run no program")

    monkeypatch.setattr(sb.Sandbox, "__init__", refuse)


def generate_only(ckpt, suite, out, *extra):
    return main(["eval", "--checkpoint", str(ckpt), "--tasks", str(suite), "--n", "3", "--max-tokens", "12",
                 "--generate-only", "--out", str(out), *extra])


def test_generate_only_writes_samples_and_an_unscored_report_without_a_sandbox(ckpt, suite, tmp_path, monkeypatch,
                                                                               capsys):
    no_programs(monkeypatch)
    out = tmp_path / "gen.json"
    assert generate_only(ckpt, suite, out) == 0
    stdout, err = capsys.readouterr()
    lines = (tmp_path / "gen.samples.jsonl").read_text().splitlines()
    assert len(lines) == 9 and {json.loads(x)["task_id"] for x in lines} == {"arithmetic/add", "strings/upper",
                                                                            "file_handling/count_lines"}
    r = load_report(out)
    assert r["kind"] == "eval" and r["status"] == "skipped" and r["config"]["scored"] is False and not scored(r)
    assert "not_scored" in r["details"] and "harness eval --samples" in r["details"]["not_scored"]
    m = {x["name"]: x for x in r["metrics"]}
    assert set(m) == set(SAMPLING), "an unscored report carries the sampling metrics and no score"
    assert m["eval.sampling_samples"]["value"] == 9 and 0 < m["eval.sampling_tokens"]["value"] <= 9 * 12
    assert m["eval.sampling_tokens_per_s"]["value"] == pytest.approx(
        m["eval.sampling_tokens"]["value"] / m["eval.sampling_s"]["value"])
    assert m["eval.sampling_s"]["unit"] == "s" and m["eval.sampling_s"]["higher_is_better"] is False
    assert m["eval.sampling_tokens_per_s"]["higher_is_better"] is True
    for name in ("eval.sampling_decode_tokens_per_s", "eval.sampling_first_token_s", "eval.sampling_call_s"):
        assert len(m[name]["samples"]) == 3 and m[name]["value"] > 0  # one call per task: its 3 rows together
        lo, hi = m[name]["stats"]["ci95"]
        assert lo <= m[name]["value"] <= hi
    g = r["config"]["generation"]
    assert g["decoder"]["name"] == "reference" and "batch_layout" in g["decoder"] and g["rows_per_call"] == 3
    assert g["calls"] == 3 and g["device"]["mlx_device"].startswith("Device(")
    assert r["config"]["model"]["backend"] == "reference" and r["config"]["sampling"]["n"] == 3
    # the message says it was not scored and how to score it
    assert "scored=no" in stdout and f"report={out}" in stdout
    assert "not scored" in err and f"harness eval --samples {tmp_path / 'gen.samples.jsonl'}" in err
    assert "WARNING" not in err


@pytest.mark.parametrize("source", [["--samples", "SAMPLES"], ["--canonical"]])
def test_generate_only_without_a_model_is_a_usage_error(source, suite, tmp_path, capsys):
    s = tmp_path / "s.jsonl"
    s.write_text(json.dumps({"task_id": "strings/upper", "completion": "x"}) + "\n")
    out = tmp_path / "r.json"
    args = [str(s) if a == "SAMPLES" else a for a in source]
    assert main(["eval", *args, "--tasks", str(suite), "--generate-only", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--generate-only" in err and "nothing to generate" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / "r.samples.jsonl").exists()


def test_two_unscored_reports_compare_on_sampling_speed_and_publish(ckpt, suite, tmp_path, monkeypatch, capsys):
    no_programs(monkeypatch)
    a, b = tmp_path / "before.json", tmp_path / "after.json"
    assert generate_only(ckpt, suite, a) == 0 and generate_only(ckpt, suite, b) == 0
    capsys.readouterr()
    cmp_out = tmp_path / "cmp.json"
    assert main(["compare", str(a), str(b), "--json", "--out", str(cmp_out)]) in (0, 1)
    got = json.loads(capsys.readouterr().out)
    names = {row["name"] for row in got["rows"]}
    assert names == set(SAMPLING) and got["comparable"]
    assert any("not scored" in n for n in got["notes"])
    totals = {row["name"]: row for row in got["rows"] if row["method"] == "threshold-only"}
    assert "eval.sampling_s" in totals and all(r["status"] in ("changed", "unchanged") for r in totals.values())
    # different sampling settings are not comparable
    c = tmp_path / "c.json"
    assert generate_only(ckpt, suite, c, "--temperature", "0.2") == 0
    capsys.readouterr()
    assert main(["compare", str(a), str(c)]) == 2
    assert "sampling.temperature" in capsys.readouterr().err
    # publish: tables and site take an unscored report
    assert main(["publish", str(a), str(b), "--out", str(tmp_path / "pub"), "--site", str(tmp_path / "site")]) == 0
    md = (tmp_path / "pub" / "RESULTS.md").read_text()
    assert "not scored (--generate-only)" in md and "### Sampling speed (harness eval)" in md
    page = (tmp_path / "site" / "eval" / "before.html").read_text()
    assert "not scored" in page and "eval.sampling_tokens_per_s" in page
    assert main(["claims", "--reports", str(a), "--summary", "--fail-on", "none"]) == 0


@pytest.mark.sandbox
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_eval_checkpoint_reports_sampling_metrics_beside_the_scores(ckpt, suite, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["eval", "--checkpoint", str(ckpt), "--tasks", str(suite), "--n", "2", "--k", "1,2",
                 "--max-tokens", "8", "--no-quality", "--no-check", "--workers", "2", "--out", str(out)]) == 0
    r = load_report(out)
    m = {x["name"]: x for x in r["metrics"]}
    assert r["status"] == "ok" and scored(r) and "scored" not in r["config"]
    assert m["eval.samples"]["value"] == 6 and m["eval.pass@1"]["value"] is not None
    assert set(SAMPLING) <= set(m) and m["eval.sampling_samples"]["value"] == 6
    assert m["eval.sampling_tokens"]["value"] > 0 and r["config"]["generation"]["calls"] == 3
    assert "sampling:" in capsys.readouterr().err


def test_scoring_later_takes_over_the_model_and_sampling_time_of_the_generating_report(ckpt, suite, tmp_path,
                                                                                       monkeypatch, capsys):
    """Sampled with --generate-only (a GPU without bubblewrap), scored here: the scored report names the model and
    carries the sampling metrics of the report next to the samples, which are the same bytes (samples_sha256)."""
    gen = tmp_path / "gen.json"
    with monkeypatch.context() as m:
        no_programs(m)
        assert generate_only(ckpt, suite, gen) == 0
    samples = tmp_path / "gen.samples.jsonl"
    scored_out = tmp_path / "gen.scored.json"
    capsys.readouterr()
    assert main(["eval", "--samples", str(samples), "--tasks", str(suite), "--k", "1", "--no-quality",
                 "--out", str(scored_out)]) == 0
    err = capsys.readouterr().err
    g, r = load_report(gen), load_report(scored_out)
    assert scored(r) and any(x["name"] == "eval.pass@1" for x in r["metrics"])
    for k in ("model", "sampling", "seed", "generation", "checkpoint"):
        assert r["config"][k] == g["config"][k], k
    assert r["config"]["sampled_by"]["report"] == str(gen) and r["config"]["sampled_by"]["created_at"] == g["created_at"]
    assert r["config"]["samples_sha256"] == g["config"]["samples_sha256"]
    want = {x["name"]: x["value"] for x in g["metrics"]}
    got = {x["name"]: x["value"] for x in r["metrics"] if x["name"].startswith("eval.sampling_")}
    assert got == want and set(got) == set(SAMPLING)
    assert all("not on the machine that scored" in x["note"] for x in r["metrics"] if x["name"] in SAMPLING)
    assert f"the samples come from {gen}" in err
    # published together, the sampling appears once: as the generating report's row
    assert main(["publish", str(gen), str(scored_out), "--out", str(tmp_path / "pub"), "--no-plots"]) == 0
    md = (tmp_path / "pub" / "RESULTS.md").read_text()
    sampling = md[md.index("### Sampling speed"):]
    assert "| gen.json |" in sampling and "gen.scored.json" not in sampling
    # samples edited after they were generated: the report next to them no longer describes them
    samples.write_text(samples.read_text().replace('"completion": "', '"completion": "true; ', 1))
    other = tmp_path / "edited.json"
    assert main(["eval", "--samples", str(samples), "--tasks", str(suite), "--k", "1", "--no-quality",
                 "--out", str(other)]) == 0
    err = capsys.readouterr().err
    r2 = load_report(other)
    assert "sampled_by" not in r2["config"] and "model" not in r2["config"]
    assert not any(x["name"].startswith("eval.sampling_") for x in r2["metrics"])
    assert "not the eval report that generated them" in err
