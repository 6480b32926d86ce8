"""The gate's verdicts: identical runs never compare as a regression, a real slowdown is flagged, evaluations are
compared per task (McNemar for one sample a task, a paired bootstrap for several), and the intervals behind
them cover what they claim."""
import json
import time

import numpy as np
import pytest

from harness.cli import main
from harness.perf.compare import compare_reports
from harness.eval.evaluate import flakiness, pass_at_k_metric
from harness.eval.execute import Execution
from harness.intervals import (block_resample, bootstrap_mean_ci, mcnemar_exact, median_ci, paired_bootstrap,
                               runs_ratio, steps_ratio)
from harness.report import make_report, merge_runs, metric, validate, write_report

ENV = {"os": {"system": "Linux", "release": "6.1"}, "cpu": {"model": "Test CPU", "cores": 2, "arch": "x86_64"},
       "ram_bytes": 8 * 2**30, "gpu": None, "python": "3.11.7",
       "mlx": {"version": "0.32.4", "backend": "cpu", "device": "Device(cpu, 0)"}, "blas": {"name": "openblas"}}
_TEMPLATE = make_report("bench", {"op": "x"}, [], environment=ENV)


def bench_report(runs_of_samples, name="train.tokens_per_s", hib=True, check=True):
    """A bench report from several runs, merged as `harness bench --runs` merges them."""
    r = dict(_TEMPLATE)
    r["metrics"] = merge_runs([[metric(name, None, "tokens/s", hib, samples=s)] for s in runs_of_samples])
    if check:
        validate(r)
    return r


def simulated_runs(rng, centre, runs=5, steps=5, run_cv=0.04, step_cv=0.03, rho=0.6):
    """Runs whose level wanders (run_cv) and whose steps are AR(1)-correlated (rho): what a shared VM gives."""
    out = []
    for _ in range(runs):
        level = centre * rng.lognormal(0, run_cv)
        e, xs = 0.0, []
        for _ in range(steps):
            e = rho * e + np.sqrt(1 - rho**2) * rng.normal(0, step_cv)
            xs.append(level * np.exp(e))
        out.append(xs)
    return out


# --- timings -------------------------------------------------------------------------------------------

def test_identical_simulated_runs_rarely_alarm_and_a_20_percent_drop_is_found():
    rng = np.random.default_rng(7)
    alarms = found = 0
    pairs = 200
    for _ in range(pairs):
        a, b = (bench_report(simulated_runs(rng, 1500), check=False) for _ in range(2))
        alarms += bool(compare_reports(a, b, alpha=0.01).regressions)
        c = bench_report(simulated_runs(rng, 1200), check=False)
        found += compare_reports(a, c, alpha=0.01).rows[0].status == "regression"
    assert alarms <= 0.02 * pairs
    assert found >= 0.9 * pairs


def test_one_run_a_side_uses_blocks_of_consecutive_steps():
    """One run per side, steps AR(1)-correlated: the block bootstrap keeps false alarms rare; the row says
    that run-to-run variation was not measured."""
    rng = np.random.default_rng(3)
    alarms = 0
    for _ in range(60):
        a, b = (bench_report(simulated_runs(rng, 1000, runs=1, steps=25, run_cv=0.0), check=False) for _ in range(2))
        row = compare_reports(a, b, alpha=0.01).rows[0]
        assert row.method == "block-bootstrap" and "run-to-run variation not measured" in row.note
        alarms += row.status == "regression"
    assert alarms <= 2


def _workload(work: int, runs=5, steps=5):
    """A real measurement: per-step tokens/s of a fixed numpy computation, CPU time best of 3 (steal-proof)."""
    x = np.random.default_rng(0).normal(size=(96, 96))
    out = []
    for _ in range(runs):
        xs = []
        for _ in range(steps):
            best = float("inf")
            for _ in range(3):
                t0 = time.process_time()
                for _ in range(work):
                    x @ x
                best = min(best, time.process_time() - t0)
            xs.append(1000 / max(best, 1e-9))
        out.append(xs)
    return out


def test_real_identical_runs_compare_unchanged_or_inconclusive_and_a_real_slowdown_is_flagged(tmp_path, capsys):
    base = bench_report(_workload(40))
    same = bench_report(_workload(40))
    slow = bench_report(_workload(80))  # twice the work per step: a slowdown the machine makes
    assert compare_reports(base, same).rows[0].status in ("unchanged", "inconclusive")
    row = compare_reports(base, slow).rows[0]
    assert row.status == "regression" and row.method == "runs" and row.ci[1] < 1
    b, s, n = (write_report(r, tmp_path / f"{k}.json") for k, r in (("b", base), ("s", same), ("n", slow)))
    assert main(["compare", str(b), str(s)]) == 0
    assert main(["compare", str(b), str(n)]) == 1
    assert "regressed" in capsys.readouterr().err


def test_inconclusive_exits_0_unless_asked_and_says_how_many_more_runs(tmp_path, capsys):
    base = bench_report([[1000] * 3, [1300] * 3, [900] * 3])
    new = bench_report([[850] * 3, [1150] * 3, [760] * 3])
    row = compare_reports(base, new).rows[0]
    assert row.status == "inconclusive" and row.more and f"about {row.more} more runs" in row.note
    b, n = write_report(base, tmp_path / "b.json"), write_report(new, tmp_path / "n.json")
    assert main(["compare", str(b), str(n)]) == 0
    assert main(["compare", str(b), str(n), "--fail-on-inconclusive", "--out", str(tmp_path / "c.json")]) == 1
    assert "inconclusive" in capsys.readouterr().err
    c = json.loads((tmp_path / "c.json").read_text())
    assert c["status"] == "failed" and c["details"]["inconclusive"]


def test_merged_runs_carry_per_run_medians_and_an_interval():
    r = bench_report([[100, 102, 98], [110, 111, 109]])
    m = r["metrics"][0]
    assert m["runs"] == [100, 110] and m["stats"]["n"] == 6
    lo, hi = m["stats"]["ci95"]
    assert lo < 105 < hi


# --- intervals -----------------------------------------------------------------------------------------

def test_block_resample_keeps_neighbours_together():
    x = np.arange(27.0)
    res = block_resample(x, 50, np.random.default_rng(0))
    assert res.shape == (50, 27)
    assert np.mean(np.diff(res, axis=1) == 1) > 0.6  # blocks of 3 consecutive steps


def test_ratio_intervals_cover_the_truth():
    rng = np.random.default_rng(1)
    cover = 0
    for _ in range(100):
        a = [np.median(rng.lognormal(np.log(100), 0.05, 5)) for _ in range(6)]
        b = [np.median(rng.lognormal(np.log(110), 0.05, 5)) for _ in range(6)]
        lo, hi = runs_ratio(a, b).ci
        cover += lo < 1.1 < hi
    assert cover >= 88
    t = steps_ratio(rng.lognormal(0, 0.02, 30), rng.lognormal(np.log(1.3), 0.02, 30))
    assert t.ci[0] > 1.2 and t.p < 0.01
    assert median_ci([5, 5, 5]) == [5.0, 5.0]


def test_pass_at_k_interval_is_a_seeded_bootstrap_over_tasks():
    m = pass_at_k_metric("eval.pass@1", [(1, 1)] * 6 + [(1, 0)] * 6, 1, "x")
    assert m["value"] == 0.5 and m["stats"]["n"] == 12
    lo, hi = m["stats"]["ci95"]
    assert 0.15 < lo < 0.5 < hi < 0.85
    assert pass_at_k_metric("eval.pass@1", [(1, 1)] * 6 + [(1, 0)] * 6, 1, "x")["stats"]["ci95"] == [lo, hi]
    assert bootstrap_mean_ci([1.0] * 4) == [1.0, 1.0]


# --- evaluations, paired -------------------------------------------------------------------------------

def eval_report(passed: dict, n: int = 1, config=None):
    tasks = [{"task_id": t, "category": t.split("/")[0], "n": n, "passed": c, "sound": True, "samples": []}
             for t, c in passed.items()]
    r = make_report("eval", {"tasks": {"name": "mini", "content_hash": "sha256:" + "0" * 64}, **(config or {})},
                    [pass_at_k_metric("eval.pass@1", [(n, c) for c in passed.values()], 1, "over all")],
                    details={"tasks": tasks}, environment=ENV)
    validate(r)
    return r


TASK_IDS = [f"cat{i % 3}/task{i:02d}" for i in range(12)]


def test_twelve_of_twelve_to_six_is_a_significant_regression(tmp_path, capsys):
    base = eval_report({t: 1 for t in TASK_IDS}, config={"samples": "a.jsonl"})
    new = eval_report({t: int(i % 2 == 0) for i, t in enumerate(TASK_IDS)}, config={"samples": "b.jsonl"})
    cmp = compare_reports(base, new)
    row = next(r for r in cmp.rows if r.name == "eval.pass@1")
    assert row.method == "mcnemar-exact" and row.status == "regression"
    assert row.p_value == pytest.approx(2 * 0.5**6) and row.change == pytest.approx(-0.5)
    assert row.ci[1] < 0 and "6 tasks passed only in BASE" in row.note
    b, n = write_report(base, tmp_path / "b.json"), write_report(new, tmp_path / "n.json")
    assert main(["compare", str(b), str(n)]) == 1
    assert main(["compare", str(n), str(b)]) == 0  # the other way round: an improvement


def test_a_rerun_of_the_same_samples_is_unchanged(tmp_path):
    passed = {t: int(i % 3 != 0) for i, t in enumerate(TASK_IDS)}
    cmp = compare_reports(eval_report(passed), eval_report(passed))
    assert [r.status for r in cmp.rows if r.name == "eval.pass@1"] == ["unchanged"]
    assert not cmp.regressions
    several = {t: 7 for t in TASK_IDS}
    row = compare_reports(eval_report(several, n=10), eval_report(several, n=10)).rows[0]
    assert row.method == "paired-bootstrap" and row.status == "unchanged"


def test_several_samples_a_task_use_the_paired_bootstrap():
    base = eval_report({t: 8 for t in TASK_IDS}, n=10)
    new = eval_report({t: 3 for t in TASK_IDS}, n=10)
    row = compare_reports(base, new).rows[0]
    assert row.method == "paired-bootstrap" and row.status == "regression"
    assert row.change == pytest.approx(-0.5)
    t = paired_bootstrap([0.5, 0.6, 0.4, 0.5], [0.6, 0.5, 0.5, 0.4])
    assert t.ci[0] < 0 < t.ci[1] and t.p > 0.05


def test_different_problem_sets_are_an_error_naming_the_difference(tmp_path, capsys):
    base = eval_report({t: 1 for t in TASK_IDS})
    new = eval_report({t: 1 for t in TASK_IDS[:-1] + ["other/extra"]})
    b, n = write_report(base, tmp_path / "b.json"), write_report(new, tmp_path / "n.json")
    assert main(["compare", str(b), str(n)]) == 2
    err = capsys.readouterr().err
    assert TASK_IDS[-1] in err and "other/extra" in err and "different problems" in err


def test_mcnemar_counts_only_discordant_tasks():
    t = mcnemar_exact([True] * 10 + [False] * 2, [True] * 10 + [True] * 2)
    assert (t.base_only, t.new_only) == (0, 2) and t.p == pytest.approx(0.5)


def test_flakiness_counts_changed_verdicts_and_near_timeouts():
    from types import SimpleNamespace as NS

    jobs = [(NS(task_id="a/x"), NS(index=0)), (NS(task_id="a/y"), NS(index=0)), (NS(task_id="a/z"), NS(index=0))]
    ex = lambda st, d: Execution(st, 0 if st == "passed" else 1, d, "", "", 0)  # noqa: E731
    runs = [[ex("passed", 0.1), ex("passed", 9.5), ex("failed", 0.1)],
            [ex("passed", 0.1), ex("timeout", 10.0), ex("failed", 0.1)]]
    ms, d = flakiness(jobs, runs, 10.0)
    by = {m["name"]: m["value"] for m in ms}
    assert by["eval.flaky_rate"] == pytest.approx(1 / 3) and by["eval.near_timeout"] == 1
    assert d["flaky"][0]["task_id"] == "a/y" and d["flaky_near_timeout"] == 1


@pytest.mark.sandbox
def test_eval_repeat_and_no_check_in_the_report(tmp_path):
    from harness.report import load_report
    from test_eval_cli import make_suite

    suite = make_suite(tmp_path / "tasks")
    out = tmp_path / "r.json"
    assert main(["eval", "--canonical", "--tasks", str(suite), "--no-check", "--no-quality", "--repeat", "2",
                 "--workers", "2", "--out", str(out)]) == 0
    r = load_report(out)
    by = {m["name"]: m for m in r["metrics"]}
    assert by["eval.unsound_problems"]["value"] is None and "not checked" in by["eval.unsound_problems"]["note"]
    assert by["eval.flaky_rate"]["value"] == 0.0 and by["eval.near_timeout"]["value"] == 0
    assert r["details"]["flakiness"]["repeats"] == 2
    assert by["eval.pass@1"]["stats"]["ci95"] == [1.0, 1.0]


def test_bench_until_decided_adds_runs_until_the_comparison_decides(tmp_path, monkeypatch):
    """harness bench --until-decided with the measurement replaced by a draw: base at 1000 tok/s, new at 700
    (a 30% drop); two runs a side are too few, so runs are added until the regression is shown."""
    import harness.perf.bench as hb
    from harness.report import load_report

    rng = np.random.default_rng(5)
    level = {"v": 1000.0}

    def fake_run_config(bc, env, **kw):
        xs = list(level["v"] * rng.lognormal(0, 0.15, 3))
        return [metric("train.tokens_per_s", None, "tokens/s", True, samples=xs, labels=bc.labels())], {"fit": "ok"}

    monkeypatch.setattr(hb, "run_config", fake_run_config)
    args = ["bench", "--config", "small", "--quick", "--no-generate", "--runs", "2"]
    assert main(args + ["--out", str(tmp_path / "base.json")]) == 0
    level["v"] = 700.0
    assert main(args + ["--until-decided", str(tmp_path / "base.json"), "--max-runs", "12",
                        "--out", str(tmp_path / "new.json")]) == 0
    new = load_report(tmp_path / "new.json")
    runs = new["measurement"]["runs"]
    assert 2 < runs <= 12 and len(new["metrics"][0]["runs"]) == runs
    decided = new["details"][-1]["until_decided"]
    assert decided["history"][0]["inconclusive"] and decided["runs"] == runs
    if not decided["still_inconclusive"]:
        assert main(["compare", str(tmp_path / "base.json"), str(tmp_path / "new.json")]) == 1


def test_mfu_is_the_median_of_per_step_values_and_old_reports_are_rescaled():
    from harness.perf.bench import BenchConfig, _train_metrics, model_config
    from harness.site.publish import mfu_at_median

    env = {"gpu": [{"name": "NVIDIA H100 80GB HBM3", "memory_bytes": 80 * 2**30}],
           "mlx": {"backend": "cuda"}, "cpu": {"model": "x", "cores": 2}}
    bc = BenchConfig(preset="small", batch=4, seq=128, dtype="bfloat16")
    steps = [0.10, 0.11, 0.12, 0.13]  # an even count: the median sits between two steps
    ms = {m["name"]: m for m in _train_metrics(bc, model_config(bc), steps, None, env)}
    tps, mfu = ms["train.tokens_per_s"], ms["train.mfu"]
    assert mfu["value"] / tps["value"] == pytest.approx(mfu["samples"][0] / tps["samples"][0])
    upper = sorted(tps["samples"])[2]
    old = {"train.tokens_per_s": tps, "train.mfu": {"value": mfu["value"] * upper / tps["value"]}}
    assert mfu_at_median(old) == pytest.approx(mfu["value"]) and mfu_at_median(ms) == mfu["value"]


@pytest.mark.sandbox
def test_a_real_rerun_of_the_same_samples_compares_unchanged(tmp_path, capsys):
    from test_eval_cli import TASKS, make_suite, samples_file

    suite = make_suite(tmp_path / "tasks")
    rows = [(t, TASKS[t][1]) for t in TASKS] + [(t, "exit 1\n") for t in TASKS]  # two samples a task, one passing
    samples = samples_file(tmp_path / "s.jsonl", rows)
    outs = [tmp_path / f"r{i}.json" for i in range(2)]
    for out in outs:
        assert main(["eval", "--samples", str(samples), "--tasks", str(suite), "--k", "1", "--no-quality",
                     "--workers", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["compare", str(outs[0]), str(outs[1]), "--json"]) == 0
    row = next(r for r in json.loads(capsys.readouterr().out)["rows"] if r["name"] == "eval.pass@1")
    assert row["status"] == "unchanged" and row["method"] == "paired-bootstrap" and row["change"] == 0
