"""harness compare: matching environments and configurations, the verdicts (regression, improvement, unchanged,
inconclusive) from run-level and block-bootstrap intervals, and the exit status."""
import json
import math
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.cli import main
from harness.perf.compare import compare_reports, ratio_ci
from harness.report import make_report, metric, validate, write_report

ENV = {"os": {"system": "Linux", "release": "6.1"}, "cpu": {"model": "Test CPU", "cores": 2, "arch": "x86_64"},
       "ram_bytes": 8 * 2**30, "gpu": None, "python": "3.11.7",
       "mlx": {"version": "0.32.4", "backend": "cpu", "device": "Device(cpu, 0)"},
       "blas": {"name": "openblas"}, "packages": {"mlx": "0.32.4"}}
CONFIG = {"preset": "small", "batch": 4, "seq": 256, "dtype": "float32", "out": "runs/a"}


_TEMPLATE = make_report("bench", {}, [], environment=ENV)  # one git query for the module, not one per report


def report(metrics, env=None, config=None, check=True):
    r = json.loads(json.dumps(_TEMPLATE))
    r.update(environment=json.loads(json.dumps(env or ENV)), config=dict(CONFIG if config is None else config),
             metrics=metrics)
    if check:
        validate(r)
    return r


def tps(samples, name="train.tokens_per_s"):
    return metric(name, None, "tokens/s", True, samples=samples)


def draw(seed, n=10, centre=1000.0, cv=0.02):
    return list(np.random.default_rng(seed).lognormal(np.log(centre), cv, n))


def status(cmp, name="train.tokens_per_s"):
    return next(r for r in cmp.rows if r.name == name).status


def test_same_distribution_passes():
    cmp = compare_reports(report([tps(draw(1))]), report([tps(draw(2))]))
    assert cmp.comparable and not cmp.regressions
    assert status(cmp) == "unchanged"


def test_ten_percent_drop_is_a_regression():
    cmp = compare_reports(report([tps(draw(1))]), report([tps(draw(2, centre=900))]))
    row = cmp.rows[0]
    assert row.status == "regression"
    assert row.change == pytest.approx(-0.10, abs=0.02)
    assert row.p_value < 0.01
    assert row.ci[1] < 0.95  # the whole interval of new/base lies below the threshold


def test_noisy_without_change_is_inconclusive_not_regression():
    base = [100, 80, 120, 95, 110, 70, 130]
    new = [90, 118, 85, 101, 79, 125, 72]  # median 90 vs 100: -10%, but the spread swamps it
    cmp = compare_reports(report([tps(base)]), report([tps(new)]))
    row = cmp.rows[0]
    assert row.change == pytest.approx(-0.10)
    assert row.p_value > 0.05 and row.status == "inconclusive" and not cmp.regressions
    assert row.more and "more timed steps" in row.note


def test_mismatched_environment_is_not_compared_and_says_what_differs():
    other = json.loads(json.dumps(ENV))
    other["cpu"]["model"] = "Another CPU"
    other["mlx"]["backend"] = "cuda"
    cmp = compare_reports(report([tps(draw(1))]), report([tps(draw(2, centre=500))], env=other))
    assert not cmp.comparable and cmp.rows == []
    keys = {d.key for d in cmp.env_diffs}
    assert keys == {"cpu.model", "mlx.backend"}
    assert "cpu.model: 'Test CPU' -> 'Another CPU'" in cmp.mismatch_message()


def test_mismatched_config_is_not_compared_but_volatile_keys_are_ignored():
    cmp = compare_reports(report([tps(draw(1))]), report([tps(draw(2))], config={**CONFIG, "out": "runs/b"}))
    assert cmp.comparable  # only the output path differs
    cmp = compare_reports(report([tps(draw(1))]), report([tps(draw(2))], config={**CONFIG, "seq": 512}))
    assert not cmp.comparable and [d.key for d in cmp.config_diffs] == ["seq"]
    cmp = compare_reports(report([tps(draw(1))]), report([tps(draw(2))], config={**CONFIG, "seq": 512}), ignore=["config.seq"])
    assert cmp.comparable


def test_informational_environment_difference_still_compares():
    newer = json.loads(json.dumps(ENV))
    newer["mlx"]["version"] = "0.33.0"
    newer["packages"]["mlx"] = "0.33.0"
    cmp = compare_reports(report([tps(draw(1))]), report([tps(draw(2, centre=850))], env=newer))
    assert cmp.comparable and status(cmp) == "regression"
    assert {d.key for d in cmp.env_info} == {"mlx.version", "packages.mlx"}


def test_lower_is_better_metrics():
    step = lambda s: metric("train.step_time_s", None, "s", False, samples=s)  # noqa: E731
    mem = lambda v: metric("train.peak_memory_bytes", v, "bytes", False)  # noqa: E731
    cmp = compare_reports(report([step(draw(3, centre=0.5)), mem(1e9)]),
                          report([step(draw(4, centre=0.55)), mem(0.9e9)]))
    assert status(cmp, "train.step_time_s") == "regression"
    assert status(cmp, "train.peak_memory_bytes") == "improvement"
    cmp = compare_reports(report([mem(1e9)]), report([mem(1.1e9)]))
    row = cmp.rows[0]
    assert row.status == "regression" and "threshold only" in row.note  # no samples: the threshold decides


def test_threshold_is_configurable_and_small_changes_pass():
    base, new = report([tps(draw(1, n=20))]), report([tps(draw(2, n=20, centre=970))])
    assert not compare_reports(base, new, threshold=0.05).regressions
    assert compare_reports(base, new, threshold=0.01).regressions


def test_one_run_a_side_says_run_to_run_variation_is_unseen():
    cmp = compare_reports(report([tps([100, 101, 99, 100, 102, 98])]), report([tps([80, 81, 79, 80, 82, 78])]))
    row = cmp.rows[0]
    assert row.method == "block-bootstrap" and row.status == "regression"
    assert "run-to-run variation not measured" in row.note


def test_no_direction_is_never_a_regression_and_missing_metrics_are_listed():
    info = lambda v: metric("data.tokens", v, "tokens", None)  # noqa: E731
    cmp = compare_reports(report([info(100), tps(draw(1))]), report([info(50), tps(draw(1)), tps(draw(2), "gen.tokens_per_s")]))
    assert status(cmp, "data.tokens") == "changed" and not cmp.regressions
    assert "only in new" in next(r for r in cmp.rows if r.name == "gen.tokens_per_s").note


def test_labels_keep_twin_metrics_apart():
    a = [dict(tps(draw(1)), labels={"framework": "mlx"}), dict(tps(draw(2, centre=2000)), labels={"framework": "torch"})]
    b = [dict(tps(draw(3, centre=880)), labels={"framework": "mlx"}), dict(tps(draw(4, centre=2000)), labels={"framework": "torch"})]
    cmp = compare_reports(report(a), report(b))
    assert [r.key for r in cmp.regressions] == ["train.tokens_per_s[framework=mlx]"]


def test_ratio_ci_brackets_the_true_ratio():
    lo, hi = ratio_ci(draw(5, n=30), draw(6, n=30, centre=1100))
    assert lo < 1.1 < hi and lo > 1.0


@given(st.lists(st.floats(1, 1e6), min_size=2, max_size=12), st.floats(1e-3, 1e3))
def test_identical_reports_never_regress_and_scaling_changes_nothing(samples, c):
    r = report([tps(samples)], check=False)
    assert not compare_reports(r, r).regressions
    a, b = report([tps(samples)], check=False), report([tps([x * 0.8 for x in samples])], check=False)
    sa, sb = report([tps([x * c for x in samples])], check=False), report([tps([x * 0.8 * c for x in samples])], check=False)
    assert [x.status for x in compare_reports(a, b).rows] == [x.status for x in compare_reports(sa, sb).rows]


def _measured_report():
    """A real measurement: fp32 matmul throughput on this machine, with warm-up and repeats."""
    import mlx.core as mx

    a, b = mx.random.normal((192, 192)), mx.random.normal((192, 192))
    mx.eval(a, b)
    for _ in range(3):
        mx.eval(a @ b)
    samples = []
    for _ in range(15):
        # CPU time of this process, best of 5: other jobs on a shared machine steal wall time, not CPU time
        best = math.inf
        for _ in range(5):
            t0 = time.process_time()
            mx.eval(a @ b)
            best = min(best, time.process_time() - t0)
        samples.append(2 * 192**3 / max(best, 1e-9))
    return make_report("bench", {"op": "matmul", "n": 192, "dtype": "float32"},
                       [metric("matmul.flops_per_s", None, "FLOP/s", True, samples=samples)],
                       measurement={"warmup": 3, "repeats": 15, "method": "process CPU time, best of 5 per sample"})


def test_cli_on_a_real_report(tmp_path, capsys):
    r = _measured_report()
    base = write_report(r, tmp_path / "base.json")
    same = write_report(r, tmp_path / "same.json")
    slower = json.loads(json.dumps(r))
    m = slower["metrics"][0]
    m["samples"] = [x * 0.9 for x in m["samples"]]
    m["value"] *= 0.9
    worse = write_report(slower, tmp_path / "worse.json")
    assert main(["compare", str(base), str(same)]) == 0
    rc = main(["compare", str(base), str(worse), "--out", str(tmp_path / "cmp.json")])
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    validate(cmp)
    row = cmp["details"]["rows"][0]
    s = np.asarray(r["metrics"][0]["samples"])
    if s.std() / s.mean() < 0.05:  # 15 samples this steady make a 10% shift unmistakable
        assert rc == 1 and row["status"] == "regression"
        assert "regressed" in capsys.readouterr().err
    else:  # a machine this noisy cannot show 10% with 15 samples: the gate must say inconclusive, not fail
        assert (rc, row["status"]) in ((1, "regression"), (0, "inconclusive"))
    assert main(["compare", str(base), str(worse), "--threshold", "0.2"]) == 0


def test_cli_exit_codes_and_json(tmp_path, capsys):
    base = write_report(report([tps(draw(1))]), tmp_path / "base.json")
    new = write_report(report([tps(draw(2, centre=880))]), tmp_path / "new.json")
    other_env = json.loads(json.dumps(ENV))
    other_env["cpu"]["cores"] = 16
    far = write_report(report([tps(draw(2))], env=other_env), tmp_path / "far.json")
    assert main(["compare", str(base), str(new), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["regressions"] == ["train.tokens_per_s"] and out["comparable"]
    assert main(["compare", str(base), str(far)]) == 2
    assert "cpu.cores: 2 -> 16" in capsys.readouterr().err
    assert main(["compare", str(base), str(tmp_path / "missing.json")]) == 2
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["compare", str(base), str(tmp_path / "bad.json")]) == 2
    assert main(["compare", str(base), str(new), "--metric", "gen.*"]) == 2
    assert main(["compare", str(base), str(new), "--threshold", "-1"]) == 2
