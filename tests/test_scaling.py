"""harness scaling: grouping of train reports, efficiency and its interval, loss agreement, the gates and exit
statuses, the scaling report, and its section in publish."""
import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import UsageError
from harness.site.publish import load_all, markdown
from harness.report import load_report, make_report, metric, validate, write_report
from harness.perf.scaling import analyse, failures, loss_agreement, make_scaling_report

ROOT = Path(__file__).resolve().parents[1]
DP = ROOT / "results" / "gpu" / "dp"
ENV = {"os": {"system": "Linux", "release": "6.1"}, "cpu": {"model": "Test CPU", "cores": 32, "arch": "x86_64"},
       "ram_bytes": 8 * 2**30, "gpu": [{"name": "NVIDIA H200"}, {"name": "NVIDIA H200"}], "python": "3.12.3",
       "mlx": {"version": "0.32.4", "backend": "cuda", "device": "Device(gpu, 0)"},
       "blas": {"name": "openblas"}, "packages": {"mlx": "0.32.4"}}
CONFIG = {"preset": "tiny", "stage": "pretrain", "steps": 10, "batch_size": 16, "seq_len": 1024, "accum": 1,
          "lr": 3e-4, "dtype": "bfloat16", "grad_checkpoint": False, "dropout": 0.0, "seed": 0,
          "model_config": {"d_model": 768, "n_layers": 12}, "data": "runs/demo/data", "out": "/tmp/run",
          "init": None, "resume": False, "world_size": 1}
LOSSES = [[s, 8.0 - 0.1 * s] for s in range(1, 11)]
_TEMPLATE = make_report("train", {}, [], environment=ENV)  # one git query for the module


def train(ws=1, tps=100_000.0, spread=0.01, losses=None, val=None, out=None, **config):
    r = json.loads(json.dumps(_TEMPLATE))
    samples = [tps * (1 + spread * ((i % 5) - 2) / 2) for i in range(9)]  # median tps, symmetric spread
    r.update(config={**CONFIG, "world_size": ws, "out": out or f"/tmp/run{ws}", **config},
             metrics=[metric("train.loss", 6.0, "nats/token", False),
                      metric("train.tokens_per_s", None, "tokens/s", True, samples=samples),
                      metric("train.step_time_s", None, "s", False, samples=[16384 / s for s in samples])],
             details={"losses": LOSSES if losses is None else losses,
                      "val_losses": [[0, 8.5], [10, 7.2]] if val is None else val})
    validate(r)
    return r


def write(tmp_path, name, r):
    p = tmp_path / name
    write_report(r, p)
    return str(p)


def test_efficiency_speedup_and_interval():
    [g] = analyse([("a", train(1, 100_000)), ("b", train(2, 160_000)), ("c", train(4, 280_000))])
    assert [p.world_size for p in g.points] == [1, 2, 4]
    base, two, four = g.points
    assert base.speedup is None and base.efficiency is None
    assert two.speedup == pytest.approx(1.6) and two.efficiency == pytest.approx(0.8)
    assert four.speedup == pytest.approx(2.8) and four.efficiency == pytest.approx(0.7)
    lo, hi = two.efficiency_ci
    assert lo <= 0.8 <= hi and hi - lo < 0.05
    assert two.speedup_ci[0] == pytest.approx(2 * lo)
    assert (g.preset, g.global_batch, g.seq_len) == ("tiny", 16, 1024)


def test_global_batch_counts_accumulation():
    [g] = analyse([("a", train(1, batch_size=8, accum=4)), ("b", train(2, batch_size=8, accum=4))])
    assert g.global_batch == 32


def test_loss_agreement_on_common_steps():
    assert loss_agreement(LOSSES, LOSSES).max_rel_diff == 0
    moved = [[s, v * (1.02 if s == 5 else 1.0)] for s, v in LOSSES]
    a = loss_agreement(LOSSES, moved)
    assert a.max_rel_diff == pytest.approx(0.02) and a.at_step == 5 and a.common_steps == 10
    a = loss_agreement(LOSSES, [x for x in moved if x[0] % 2 == 0])  # steps missing on one side: intersection
    assert a.common_steps == 5 and a.at_step != 5 and a.max_rel_diff == 0
    assert loss_agreement(LOSSES, [[99, 1.0]]).common_steps == 0
    assert loss_agreement(LOSSES, [[1, float("nan")]]).max_rel_diff == float("inf")
    [g] = analyse([("a", train(1)), ("b", train(2, losses=moved, val=[[0, 8.5], [10, 7.2 * 1.001]]))])
    p = g.points[1]
    assert p.loss.max_rel_diff == pytest.approx(0.02) and p.val_loss.max_rel_diff == pytest.approx(0.001)
    assert p.val_loss.common_steps == 2
    assert failures([g], loss_rtol=0.01) and not failures([g], loss_rtol=0.05)


def test_groups_by_global_batch_and_ignores_output_paths():
    reps = [("a", train(1, out="/x/a", init="ckpt/1")), ("b", train(2, 150_000, out="/y/b")),
            ("c", train(1, batch_size=32)), ("d", train(2, 190_000, batch_size=32))]
    groups = analyse(reps)
    assert [(g.global_batch, [p.path for p in g.points]) for g in groups] == [(16, ["a", "b"]), (32, ["c", "d"])]
    assert groups[0].points[1].efficiency == pytest.approx(0.75)
    assert groups[1].points[1].efficiency == pytest.approx(0.95)
    labels = [m["labels"] for m in make_scaling_report(groups)["metrics"] if m["name"] == "scaling.efficiency"]
    assert labels == [{"world_size": 2, "global_batch": 16, "seq_len": 1024, "preset": "tiny"},
                      {"world_size": 2, "global_batch": 32, "seq_len": 1024, "preset": "tiny"}]


def test_single_process_only_groups_are_left_out_and_copies_count_once():
    base = train(1)
    groups = analyse([("a", base), ("a-copy", json.loads(json.dumps(base))), ("b", train(2)),
                      ("other", train(1, lr=1e-3))])
    assert len(groups) == 1 and [p.path for p in groups[0].points] == ["a", "b"]
    with pytest.raises(UsageError, match="no multi-process train report"):
        analyse([("a", train(1)), ("other", train(1, lr=1e-3))])


def test_missing_baseline_names_the_file_and_what_differs():
    with pytest.raises(UsageError) as e:
        analyse([("runs/two.json", train(2)), ("runs/one.json", train(1, batch_size=32))])
    msg = str(e.value)
    assert "runs/two.json" in msg and "world_size=1" in msg and "runs/one.json differs in batch_size" in msg
    other_gpu = json.loads(json.dumps(train(1)))
    other_gpu["environment"]["gpu"] = [{"name": "NVIDIA H100 80GB HBM3"}]
    with pytest.raises(UsageError, match="hardware"):
        analyse([("two", train(2)), ("one", other_gpu)])


def test_bad_groups_are_errors():
    with pytest.raises(UsageError, match="both world_size=2"):
        analyse([("a", train(1)), ("b", train(2, 150_000)), ("c", train(2, 160_000))])
    with pytest.raises(UsageError, match="share no logged training step"):
        analyse([("a", train(1)), ("b", train(2, losses=[[99, 1.0]]))])
    with pytest.raises(UsageError, match="not a train report"):
        analyse([("a", train(1)), ("b", {**train(2), "kind": "bench"})])


def test_cli_exit_statuses(tmp_path, capsys):
    one, two = write(tmp_path, "one.json", train(1, 100_000)), write(tmp_path, "two.json", train(2, 160_000))
    assert main(["scaling", one, two]) == 0
    out = capsys.readouterr().out
    assert "80.0%" in out and "1.600" in out and "loss rel diff <= 0.01" in out
    assert main(["scaling", one, two, "--min-efficiency", "0.75"]) == 0
    assert main(["scaling", one, two, "--min-efficiency", "0.85"]) == 1
    assert "efficiency 0.800 < 0.85" in capsys.readouterr().err
    assert main(["scaling", one, two, "--min-efficiency", "85"]) == 2  # a percentage, not a fraction
    moved = write(tmp_path, "moved.json", train(4, 300_000, losses=[[s, v * 1.03] for s, v in LOSSES]))
    assert main(["scaling", one, moved]) == 1
    assert "loss differs" in capsys.readouterr().err
    assert main(["scaling", one, moved, "--loss-rtol", "0.05"]) == 0
    capsys.readouterr()
    assert main(["scaling", one, two, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["groups"][0]["points"][1]["efficiency"] == pytest.approx(0.8) and d["failures"] == []


def test_cli_bad_input_is_exit_2_naming_the_file(tmp_path, capsys):
    one, two = write(tmp_path, "one.json", train(1)), write(tmp_path, "two.json", train(2))
    bench = write(tmp_path, "bench.json", {**train(1), "kind": "bench"})
    assert main(["scaling", one, bench]) == 2
    assert "bench.json is a 'bench' report, not a train report" in capsys.readouterr().err
    assert main(["scaling", two]) == 2
    assert "two.json" in capsys.readouterr().err
    assert main(["scaling", one, str(tmp_path / "missing.json")]) == 2
    assert "missing.json does not exist" in capsys.readouterr().err
    assert main(["scaling", str(tmp_path / "one.json")]) == 2  # a baseline alone: nothing to scale
    assert main(["scaling", str(tmp_path)]) == 0  # in a folder, other kinds of reports are passed over


def test_out_report_validates_and_round_trips(tmp_path):
    one, two = write(tmp_path, "one.json", train(1, 100_000)), write(tmp_path, "two.json", train(2, 160_000))
    out = tmp_path / "sub" / "scaling.json"
    assert main(["scaling", one, two, "--out", str(out), "--min-efficiency", "0.9"]) == 1
    r = load_report(out)
    assert r["kind"] == "scaling" and r["status"] == "failed"
    assert r["config"]["min_efficiency"] == 0.9 and r["config"]["loss_rtol"] == 0.01
    by = {(m["name"], m["labels"]["world_size"]): m for m in r["metrics"]}
    assert set(by) == {("scaling.tokens_per_s", 1), ("scaling.tokens_per_s", 2), ("scaling.speedup", 2),
                       ("scaling.efficiency", 2), ("scaling.loss_max_rel_diff", 2),
                       ("scaling.val_loss_max_rel_diff", 2)}
    assert by["scaling.efficiency", 2]["value"] == pytest.approx(0.8)
    lo, hi = by["scaling.efficiency", 2]["interval"]
    assert lo <= 0.8 <= hi
    assert by["scaling.tokens_per_s", 1]["stats"]["n"] == 9
    assert by["scaling.loss_max_rel_diff", 2]["value"] == 0
    assert by["scaling.efficiency", 2]["labels"] == {"world_size": 2, "global_batch": 16, "seq_len": 1024,
                                                      "preset": "tiny"}
    assert [i["path"] for i in r["details"]["inputs"]] == [one, two]
    assert r["details"]["inputs"][0]["git_commit"] == _TEMPLATE["git"]["commit"]
    assert r["details"]["environment_from"] == two and r["environment"] == ENV
    assert not list(out.parent.glob(".*.tmp"))  # written atomically, nothing left behind
    # the scaling report against itself: compare reads it like any other
    assert main(["compare", str(out), str(out)]) == 0


def test_publish_renders_the_section_and_the_site_takes_the_new_kind(tmp_path):
    one, two = write(tmp_path, "one.json", train(1, 100_000)), write(tmp_path, "two.json", train(2, 160_000))
    write_report(make_scaling_report(analyse([(one, load_report(one)), (two, load_report(two))])),
                 tmp_path / "scaling.json")
    md = markdown(load_all([tmp_path / "scaling.json"]))
    assert "### Data-parallel scaling" in md
    rows = [line for line in md.splitlines() if line.startswith("| tiny")]
    assert len(rows) == 2
    assert "| 1 (baseline) |" in rows[0] and "| 1.6x |" in rows[1] and "80.0% [" in rows[1]
    assert "0.0e+00 / 0.0e+00" in rows[1] and "scaling.json" in rows[1]
    md = markdown(load_all([tmp_path]))  # with the train reports: both sections
    assert "### Training runs" in md and "### Data-parallel scaling" in md
    from harness.site.build import build_site

    pages = build_site(load_all([tmp_path]), tmp_path / "site")
    assert "scaling" in pages[0].read_text()


@pytest.mark.skipif(not (DP / "train-2gpu.json").exists(), reason="no committed data-parallel reports")
def test_committed_two_gpu_reports():
    [g] = analyse([(DP / "train-1gpu.json", load_report(DP / "train-1gpu.json")),
                   (DP / "train-2gpu.json", load_report(DP / "train-2gpu.json"))])
    p = g.points[1]
    assert p.world_size == 2 and g.global_batch == 16 and g.seq_len == 1024
    assert p.efficiency == pytest.approx(716_684 / (2 * 442_837), rel=1e-4)
    assert p.efficiency == pytest.approx(0.81, abs=0.005)
    assert p.efficiency_ci[0] < p.efficiency < p.efficiency_ci[1]
    assert p.loss.common_steps == 40 and p.loss.max_rel_diff < 1e-3
    assert p.val_loss.common_steps == 2 and p.val_loss.max_rel_diff < 1e-3
    assert main(["scaling", str(DP / "train-1gpu.json"), str(DP / "train-2gpu.json")]) == 0


def test_committed_four_gpu_reports():
    """The README's data-parallel figures: 4 x H200, tiny, global batches 32 and 64 x 1024."""
    reports = [(p, load_report(p)) for p in sorted(DP.glob("train-b*-*gpu.json"))]
    groups = {g.global_batch: g for g in analyse(reports)}
    assert sorted(groups) == [32, 64]
    eff = {(b, p.world_size): p.efficiency for b, g in groups.items() for p in g.points if p.world_size > 1}
    assert eff[(64, 2)] == pytest.approx(0.941, abs=0.005) and eff[(64, 4)] == pytest.approx(0.837, abs=0.005)
    assert eff[(32, 2)] == pytest.approx(0.865, abs=0.005) and eff[(32, 4)] == pytest.approx(0.707, abs=0.005)
    for g in groups.values():
        for p in g.points[1:]:
            assert p.loss.common_steps == 40 and p.loss.max_rel_diff < 1e-2
    assert load_report(DP / "scaling.json")["kind"] == "scaling"
