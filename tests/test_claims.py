"""The claims audit: the fixture covers every numeric line of the seed documents, the physical models give
the bounds they state, every claim gets a verdict with evidence, and measurements on matching hardware (or
twin reports on other hardware) are used for what they are."""
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.perf import feasibility as fz
from harness.claims.audit import (DEFAULT_CLAIMS, VERDICTS, audit, claims_report, load_claims, verdict_counts)
from harness.cli import main
from harness.errors import UsageError
from harness.perf.hardware import lookup
from harness.report import make_report, metric, validate, write_report
from reference.config import get_config, param_count

SEED = DEFAULT_CLAIMS.parent / "seed"
CPU_ENV = {"os": {}, "cpu": {"model": "Test CPU", "cores": 2, "arch": "x86_64"}, "gpu": None, "python": "3.11",
           "mlx": {"version": "0.32.4", "backend": "cpu", "device": "Device(cpu, 0)"}, "blas": {"name": "openblas"}}
M1MAX_ENV = {"os": {"system": "Darwin"}, "cpu": {"model": "Apple M1 Max", "cores": 10, "arch": "arm64"}, "gpu": None,
             "python": "3.12", "mlx": {"version": "0.30.1", "backend": "metal", "device": "Device(gpu, 0)"},
             "blas": {"name": "accelerate"}}


@pytest.fixture(scope="module")
def doc():
    return load_claims()


@pytest.fixture(scope="module")
def items(doc):
    return {i["id"]: i for i in audit(doc, [])}


def _report(metrics, env, config):
    r = make_report("bench", config, metrics, environment=env)
    validate(r)
    return r


# --- the fixture --------------------------------------------------------------------------------------

def test_fixture_shape(doc):
    claims = doc["claims"]
    assert len(claims) >= 80
    assert len({c["id"] for c in claims}) == len(claims)
    for c in claims:
        assert c["metric"] and c["unit"] and c["quote"], c["id"]
        assert isinstance(c["value"], (int, float, str)), c["id"]
        for name in ([c["hardware"]] if isinstance(c["hardware"], str) else c["hardware"] or []):
            assert lookup(name), (c["id"], name)
        if "preset" in c["configuration"]:
            get_config(c["configuration"]["preset"])


def test_every_quote_is_on_its_cited_line(doc):
    texts = {f: (SEED / f).read_text(encoding="utf-8").splitlines() for f in doc["documents"]}
    for c in doc["claims"]:
        src = c["source"]
        assert c["quote"] in texts[src["file"]][src["line"] - 1], c["id"]
        assert src["section"], c["id"]
        for a in src.get("also", []):
            assert 1 <= a["line"] <= len(texts[a["file"]]), c["id"]


def test_every_numeric_line_of_the_seed_is_cited_or_explained(doc):
    cited = {(c["source"]["file"], c["source"]["line"]) for c in doc["claims"]}
    cited |= {(a["file"], a["line"]) for c in doc["claims"] for a in c["source"].get("also", [])}
    cited |= {(f, ln) for r in doc["recipes"].values() for f, lines in r["lines"].items() for ln in lines}
    explained = {(n["file"], ln) for n in doc["not_claims"] for ln in n["lines"]}
    assert not cited & explained, "a line is both a claim and 'not a claim'"
    missing = []
    for f in doc["documents"]:
        for i, line in enumerate((SEED / f).read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\d", line) and (f, i) not in cited | explained:
                missing.append(f"{f}:{i}: {line.strip()}")
    assert not missing, "numeric lines neither audited nor explained:\n" + "\n".join(missing)


def test_the_brief_s_named_claims_are_present(doc):
    quotes = " ".join(c["quote"] for c in doc["claims"])
    for needle in ("12K tok/s | 42K tok/s", "24GB for 500M | 16GB for 500M", "2x larger batches", "3-5x faster",
                   "Up to 1B", "4096 token", "74M tokens", "523MB, 12M tokens", "40% memory reduction", "2x speedup",
                   "30-40% better", "$2,000-5,000", "Parameters: 371M", "Parameters: 98.9M", "198.02ms", "~646",
                   "~0.40 GB", "2,119,719", "371,713,604", "483,227,685", "1.77 GB", "2,641", "1,924", "1,767", "173,330",
                   "650,001", "845,001", "5.35 MB", "Avg lines/script: 98", "570x", "8x larger", "4x larger", "11,242,600",
                   "1,779", "| 350M | 256 | 125 | 45ms |", "| Pass@1 | 62% | 71% |"):
        assert needle in quotes, needle


# --- physical models ----------------------------------------------------------------------------------

def test_korthikanti_activation_formula():
    cfg = get_config("medium")
    s, b, h, a = 2048, 4, cfg.d_model, cfg.n_heads
    assert fz.layer_activation_bytes(cfg, b, s, 2, dropout=True, scores=True) == s * b * h * (34 + 5 * a * s / h)
    assert fz.layer_activation_bytes(cfg, b, s, 4, dropout=True, scores=True) == s * b * h * (66 + 9 * a * s / h)
    assert fz.layer_activation_bytes(cfg, b, s, 2, dropout=False, scores=False) == 32 * s * b * h


@given(st.sampled_from(["small", "tiny", "medium", "large"]), st.integers(1, 64), st.integers(16, 4096))
def test_memory_estimates_are_ordered_and_monotone(preset, batch, seq):
    cfg = get_config(preset)
    floor, lean = fz.memory_floor(param_count(cfg)), fz.memory_lean(cfg, batch, seq)
    plain, ck = fz.memory_plain(cfg, batch, seq), fz.memory_checkpointed(cfg, batch, seq)
    assert floor.total < lean.total < plain.total
    assert ck.total <= plain.total
    assert fz.memory_lean(cfg, batch + 1, seq).total > lean.total
    assert fz.memory_plain(cfg, batch, seq + 1).total > plain.total


def test_decode_bound_reads_the_weights():
    cfg = get_config("medium")
    b = fz.decode_bytes_per_token(cfg, 0, 2)
    assert b == pytest.approx(2 * 335_079_424 + 2 * 0)  # non-embedding params incl. the tied head
    assert lookup("M1 Max").bandwidth / b == pytest.approx(597, rel=0.01)


def test_the_brief_s_example_42k_on_m1_max_needs_ten_times_the_peak():
    fpt, _ = fz.training_flops_per_token(get_config("medium"), 2048)
    assert 9 < 42_000 * fpt / lookup("M1 Max").flops["fp32"] < 12


# --- the audit ----------------------------------------------------------------------------------------

def test_every_claim_has_a_verdict_and_evidence(items):
    for i in items.values():
        assert i["verdict"] in VERDICTS
        assert len(i["evidence"]) > 20 and re.search(r"\d", i["evidence"]), i["id"]
        assert i["findings"]
        if i["verdict"] == "unverified":
            assert "to settle: " in i["evidence"], i["id"]
    counts = verdict_counts(list(items.values()))
    assert all(counts[v] > 0 for v in VERDICTS)


@pytest.mark.parametrize("cid,verdict,needle", [
    ("readme.bench.tokens_per_s.medium-32x2048", "impossible", "the Apple M1 Max's 10.4 TFLOP/s"),
    ("readme.why.mlx-speed", "impossible", "Apple M1 Ultra"),        # the fastest chip the claim names
    ("readme.xlarge.speed", "impossible", "6N floor"),
    ("readme.medium.time", "impossible", "94"),                       # and its own tables say 70 h + 24 h
    ("readme.pretrain.time.1000", "impossible", "39,100 tokens/s"),
    ("readme.finetune.time.1000", "impossible", "7,282 tokens/s"),
    ("readme.pretrain.memory.0", "implausible", "lean 22.9 GiB"),
    ("readme.bench.memory.medium-16x4096", "unverified", "checkpointing"),
    ("readme.why.mlx-memory", "unverified", "batch and sequence length are not stated"),
    ("readme.gen.tokens_per_s.medium-256", "unverified", "575 tokens/s"),
    ("readme.gen.first_token.medium-1024", "unverified", "impossible under that reading"),
    ("readme.medium.params", "refuted", "339,273,728"),
    ("log.medium.params", "refuted", "372,041,728"),
    ("log.tiny.params", "confirmed", "98,916,864"),
    ("readme.tiny.params", "refuted", "98.9"),
    ("log.tiny.tokens-per-s", "refuted", "1,293"),
    ("log.tiny.weights-memory", "confirmed", "0.3957 GB"),
    ("log.tiny.forward", "unverified", "2.5%"),
    ("readme.pretrain.loss.0", "implausible", "10.37"),
    ("readme.quality.pass1.medium", "unverified", "to settle"),
    ("readme.quality.syntax.medium", "refuted", "0.96"),
    ("readme.why.speedup", "unverified", "no twin comparison report"),
    ("readme.features.mixed-precision", "implausible", "compute-bound"),
    ("readme.data.bookcorpus-tokens", "implausible", "sentence count"),
    ("readme.data.bash-size", "refuted", "5.35 MB"),
    ("log.bash.avg-lines", "confirmed", "98.09"),
    ("log.context-8x", "confirmed", "512"),
    ("log.vocab-4x", "refuted", "314x"),
    ("log.lang.docs", "confirmed", "TinyStories"),
    ("log.lang.target-size", "refuted", "0.2481"),
    ("log.summary.tokens", "confirmed", "484,072,686"),
    ("readme.distributed.gpus", "refuted", "one chip"),
])
def test_key_verdicts(items, cid, verdict, needle):
    i = items[cid]
    assert i["verdict"] == verdict, (cid, i["evidence"])
    assert needle in i["evidence"], (cid, i["evidence"])


def test_measured_on_matching_hardware_confirms_or_refutes(doc):
    cfg = {"preset": "medium", "seq": 256, "batch": 1}
    good = _report([metric("gen.tokens_per_s", None, "tokens/s", True, samples=[119, 121, 120])], M1MAX_ENV, cfg)
    bad = _report([metric("gen.tokens_per_s", 60.0, "tokens/s", True)], M1MAX_ENV, cfg)
    cpu = _report([metric("gen.tokens_per_s", 9.0, "tokens/s", True)], CPU_ENV, cfg)
    cid = "readme.gen.tokens_per_s.medium-256"
    got = {i["id"]: i for i in audit(doc, [("good.json", good)])}[cid]
    assert got["verdict"] == "confirmed" and got["basis"] == "measurement" and "good.json measured 120" in got["evidence"]
    got = {i["id"]: i for i in audit(doc, [("bad.json", bad)])}[cid]
    assert got["verdict"] == "refuted" and "52.0% from the claim" in got["evidence"]
    got = {i["id"]: i for i in audit(doc, [("cpu.json", cpu)])}[cid]
    assert got["verdict"] == "unverified" and "different hardware, not comparable" in got["evidence"]
    other_seq = _report([metric("gen.tokens_per_s", 120.0, "tokens/s", True)], M1MAX_ENV, {**cfg, "seq": 1024})
    got = {i["id"]: i for i in audit(doc, [("s.json", other_seq)])}[cid]
    assert got["verdict"] == "unverified"  # another configuration never counts


def test_memory_measurement_reads_gb_either_way(doc):
    r = _report([metric("train.peak_memory_bytes", 16 * 2**30, "bytes", False)], M1MAX_ENV,
                {"preset": "medium", "batch": 16, "seq": 4096})
    got = {i["id"]: i for i in audit(doc, [("m.json", r)])}["readme.bench.memory.medium-16x4096"]
    assert got["verdict"] == "confirmed"


def test_twin_ratio_is_reported_as_what_it_is(doc):
    m = lambda fw, s: dict(metric("train.tokens_per_s", None, "tokens/s", True, samples=s), labels={"framework": fw})  # noqa: E731
    cfg = {"preset": "small", "batch": 4, "seq": 256, "dtype": "float32"}
    cpu = _report([m("mlx", [139, 140, 141, 138]), m("torch", [248, 250, 247, 252])], CPU_ENV, cfg)
    got = {i["id"]: i for i in audit(doc, [("twin.json", cpu)])}
    for cid in ("readme.why.speedup", "readme.intro.mlx-vs-torch"):
        assert got[cid]["verdict"] == "unverified"
        assert "0.56x" in got[cid]["evidence"] and "Test CPU" in got[cid]["evidence"]
        assert "neither confirms nor refutes" in got[cid]["evidence"]
    mac = _report([m("mlx", [42e3, 41e3, 43e3]), m("torch", [12e3, 12.1e3, 11.9e3])], M1MAX_ENV, cfg)
    assert {i["id"]: i for i in audit(doc, [("mac.json", mac)])}["readme.why.speedup"]["verdict"] == "confirmed"


def test_checkpointing_pairs_are_measured(doc):
    ms = [metric("train.peak_memory_bytes", v, "bytes", False,
                 labels={"preset": "small", "batch": 4, "seq": 128, "grad_checkpoint": g, "framework": "mlx"})
          for g, v in (("on", 80e6), ("off", 120e6))]
    got = {i["id"]: i for i in audit(doc, [("b.json", _report(ms, CPU_ENV, {"preset": "small"}))])}
    i = got["readme.features.grad-checkpointing"]
    assert i["verdict"] == "unverified" and "33% less (this project's trainer)" in i["evidence"]


# --- the report and the command -----------------------------------------------------------------------

def test_claims_report_is_valid(doc, items):
    r = claims_report(list(items.values()), claims_file=doc["_path"], report_paths=[], tolerance=0.1)
    validate(r)
    assert r["kind"] == "claims" and len(r["claims"]) == len(doc["claims"])
    for c in r["claims"]:
        assert {"id", "metric", "value", "unit", "hardware", "verdict", "evidence"} <= set(c)
    json.dumps(r, allow_nan=False)


def test_cli(tmp_path, capsys):
    out = tmp_path / "claims.json"
    assert main(["claims", "--reports", "--out", str(out)]) == 1  # the seed has refuted and impossible claims
    assert "claims are refuted or impossible" in capsys.readouterr().err
    r = json.loads(out.read_text())
    validate(r)
    assert r["claims"] and r["metrics"][-1]["name"] == "claims.total"
    assert main(["claims", "--reports", "--fail-on", "none", "--summary"]) == 0
    assert "Verdicts" in capsys.readouterr().out
    assert main(["claims", "--reports", "--json", "--verdict", "impossible", "--fail-on", "none"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown and {i["verdict"] for i in shown} == {"impossible"}
    assert main(["claims", "--reports", "--fail-on", "bogus"]) == 2
    assert main(["claims", "--claims", str(tmp_path / "none.json")]) == 2
    rep = write_report(make_report("bench", {}, [metric("x", 1.0, "s", False)], environment=CPU_ENV), tmp_path / "r.json")
    assert main(["claims", "--reports", str(rep), "--fail-on", "none", "--summary"]) == 0
    (tmp_path / "bad.json").write_text("[]")
    assert main(["claims", "--reports", str(tmp_path / "bad.json")]) == 2


def test_bad_claims_files(tmp_path):
    p = tmp_path / "c.json"
    for content, msg in (("{", "not valid JSON"), ('{"claims": []}', "no 'claims' list"),
                         ('{"claims": [{"id": "a"}]}', "lacks"),
                         (json.dumps({"claims": [{"id": "a", "metric": "m", "value": 1, "unit": "u", "hardware": None,
                                                  "configuration": {}, "source": {}, "quote": "q", "check": "nope"}]}),
                          "unknown check")):
        p.write_text(content)
        with pytest.raises(UsageError, match=msg):
            load_claims(p)
