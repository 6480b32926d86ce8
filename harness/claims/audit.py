"""The claims audit: every numeric claim of the seed (fixtures/claims/seed-claims.json) gets a verdict with
its evidence.

Verdicts (CONTRACT.md):
- impossible   it violates a physical bound on the hardware it names: more FLOP/s than the chip's peak, more
               bytes/s than its memory bandwidth, less memory than the weights and optimizer state.
- implausible  physically possible but beyond what anyone achieves (> 60% MFU, > 80% of bandwidth, memory
               below every saving at once, a text size per token no tokenizer gives): see harness.perf.feasibility.
- confirmed    checked: computed exactly (parameter counts), measured on matching hardware within the
               tolerance, derived correctly from the seed's other numbers, or equal to a public record.
- refuted      checked and wrong by more than the tolerance, by the same means, or contradicted by another
               statement of the same quantity in the seed.
- unverified   not checkable here; the evidence says what would settle it.
Where the seed is ambiguous (tokens per step with gradient accumulation, unstated dtype, prompt length) a
verdict uses the reading most favourable to the claim and the evidence names the other reading.
One claim can collect several findings; the verdict is the most severe: impossible > refuted > confirmed by
a measurement > implausible > confirmed > unverified. Every finding's evidence is kept in the report.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..numbers import fmt, num  # noqa: F401 (re-exported to the checks)
from ..resources import bundled
from .findings import ROOT, UNIT_SCALE, Finding, claim_hardware  # noqa: F401

VERDICTS = ("impossible", "implausible", "confirmed", "refuted", "unverified")
DEFAULT_CLAIMS = bundled("claims") / "seed-claims.json"
DEFAULT_REPORTS = ROOT / "results"
DEFAULT_TOLERANCE = 0.10  # measured vs claimed, relative
REQUIRED = ("id", "metric", "value", "unit", "hardware", "configuration", "source", "quote", "check")


@dataclass
class Context:
    doc: dict
    reports: list = field(default_factory=list)  # (path, report dict)
    tolerance: float = DEFAULT_TOLERANCE

    @property
    def by_id(self) -> dict:
        return {c["id"]: c for c in self.doc["claims"]}


def load_claims(path: str | Path | None = None) -> dict:
    p = Path(path) if path else DEFAULT_CLAIMS
    if not p.is_file():
        raise UsageError(f"claims file {p} does not exist; pass --claims FILE (default fixtures/claims/seed-claims.json "
                         "in a source checkout)")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"claims file {p} is not valid JSON ({e}); fix it or restore it from git") from None
    from .checks import CHECKS

    claims = doc.get("claims") if isinstance(doc, dict) else None
    if not isinstance(claims, list) or not claims:
        raise UsageError(f"claims file {p} has no 'claims' list; see fixtures/claims/seed-claims.json for the format")
    seen = set()
    for i, c in enumerate(claims):
        missing = [k for k in REQUIRED if k not in c]
        if missing:
            raise UsageError(f"claims file {p}: claim #{i} ({c.get('id', '?')}) lacks {', '.join(missing)}")
        if c["id"] in seen:
            raise UsageError(f"claims file {p}: claim id {c['id']!r} appears twice; ids must be unique")
        if c["check"] not in CHECKS:
            raise UsageError(f"claims file {p}: claim {c['id']} names unknown check {c['check']!r}; "
                             f"use one of {', '.join(sorted(CHECKS))}")
        seen.add(c["id"])
    for c in claims:
        for rel in c.get("relations", []):
            for a in rel.get("args", []):
                if "claim" in a and a["claim"] not in seen:
                    raise UsageError(f"claims file {p}: claim {c['id']} relates to unknown claim {a['claim']!r}")
    try:
        doc["_path"] = str(p.resolve().relative_to(ROOT))
    except ValueError:
        doc["_path"] = str(p)
    return doc


def load_reports(paths=None) -> list:
    """Reports to audit against: the given files (each must be a valid report), or every valid JSON report
    under results/ (others are skipped with a note on stderr)."""
    from ..report import find_reports

    if not paths and not DEFAULT_REPORTS.is_dir():
        return []
    return [(str(p), r) for p, r in find_reports(paths or [DEFAULT_REPORTS], who="harness claims")]


# --- numbers ------------------------------------------------------------------------------------------

def _arg(a: dict, ctx: Context) -> tuple[float | str, str]:
    if "claim" in a:
        c = ctx.by_id[a["claim"]]
        v = num(c["value"]) * a.get("scale", 1.0)
        return v, f"{a['claim']} ({fmt(c['value'])} {c['unit']}" + (f" x {a['scale']:g}" if "scale" in a else "") + ")"
    v = a["value"]
    return (v if isinstance(v, str) else float(v)), a.get("label", str(v))


OPS = {
    "equal": lambda v: v[0], "sum": sum, "product": math.prod, "ratio": lambda v: v[0] / v[1],
    "pct_less": lambda v: 100.0 * (v[0] - v[1]) / v[0], "share": lambda v: 100.0 * v[0] / v[1],
    "le": lambda v: v[0], "ge": lambda v: v[0],
}
OP_WORDS = {"equal": "stated elsewhere as", "sum": "sum", "product": "product", "ratio": "ratio",
            "pct_less": "reduction", "share": "share", "le": "at most", "ge": "at least"}
# Metrics a harness report can hold; other claims are never matched against reports.
MEASURABLE = ("train.tokens_per_s", "train.peak_memory_bytes", "train.loss", "train.val_loss", "gen.tokens_per_s",
              "gen.first_token_s", "eval.")


def relation_finding(claim: dict, rel: dict, ctx: Context) -> Finding:
    """Arithmetic between the claim and other claims or public figures (kinds: derivation, cross-check,
    reference; see the claims file's description)."""
    vals = [_arg(a, ctx) for a in rel["args"]]
    kind = rel.get("kind", "derivation")
    if isinstance(claim["value"], str) or any(isinstance(x, str) for x, _ in vals):  # versions: compared as text
        ok = rel["op"] == "equal" and str(claim["value"]) == str(vals[0][0])
        text = f"{vals[0][1]}: {vals[0][0]}; claimed {claim['value']}" + (f". {rel['why']}" if rel.get("why") else "")
        basis = rel.get("basis") or "public record"
        if rel.get("note_only"):
            return Finding(None, basis, ("consistent: " if ok else "inconsistent: ") + text)
        return Finding(("confirmed" if kind != "cross-check" else None) if ok else "refuted", basis, text)
    expected = OPS[rel["op"]]([v for v, _ in vals])
    v = num(claim["value"])
    from_claims = any("claim" in a for a in rel["args"])
    basis = rel.get("basis") or ("seed's own numbers" if from_claims else "public record")
    inputs = ", ".join(lbl for _, lbl in vals)
    if rel["op"] == "le":
        ok = v <= expected
    elif rel["op"] == "ge":
        ok = v >= expected
    else:
        tol, atol = rel.get("tolerance", 0.005), rel.get("abs_tolerance", 0.0)
        ok = abs(v - expected) <= max(atol, tol * abs(expected))
    if rel["op"] in ("le", "ge"):
        how = f"claimed {fmt(v)} must be {OP_WORDS[rel['op']]} {inputs}" + ("" if from_claims else f" = {fmt(expected)}")
    elif rel["op"] == "equal":
        word = "the public figure is" if kind == "reference" else OP_WORDS["equal"]
        how = f"{word} {inputs}" + ("" if from_claims else f" = {fmt(expected)}") + f"; claimed {fmt(v)}"
    else:
        how = f"{OP_WORDS[rel['op']]} of {inputs} = {fmt(expected)}; claimed {fmt(v)}"
    r = v / expected if expected else math.inf
    off = (f" ({r:.3g}x that)" if r > 2 or r < 0.5 else f" (off by {abs(r - 1):.1%})") if rel["op"] not in ("le", "ge") else ""
    text = how + ("" if ok else off) + (f". {rel['why']}" if rel.get("why") else "")
    if rel.get("note_only"):
        return Finding(None, basis, ("consistent: " if ok else "inconsistent: ") + text)
    if ok:
        verdict = None if kind == "cross-check" else "confirmed"
        return Finding(verdict, basis, ("agrees: " if verdict is None else "") + text)
    return Finding("refuted", basis, text)


# --- reports ------------------------------------------------------------------------------------------

def _cfg_value(config: dict, names) -> object:
    stack = [config or {}]
    while stack:
        d = stack.pop(0)
        for n in names:
            if n in d and not isinstance(d[n], dict):
                return d[n]
        stack += [v for v in d.values() if isinstance(v, dict)]
    return None


CONFIG_KEYS = {"preset": ("preset", "config", "model_preset"), "batch": ("batch", "batch_size"),
               "seq": ("seq", "seq_len", "seq_length", "context"), "recipe": ("recipe",), "stage": ("stage",),
               "step": ("step", "steps")}


def config_matches(claim_cfg: dict, report_cfg: dict, labels: dict) -> bool:
    for k, names in CONFIG_KEYS.items():
        want = claim_cfg.get(k)
        if want is None:
            continue
        got = labels.get(k) if k in labels else _cfg_value(report_cfg, names)
        if got is None or str(got) != str(want):
            return False
    fw = claim_cfg.get("framework")
    return not (fw and labels.get("framework") not in (None, fw))


def measured_findings(claim: dict, ctx: Context) -> list[Finding]:
    """Compare the claim with reports that measured its metric on its hardware and configuration."""
    from ..environment import hardware_label
    from ..perf.hardware import identify, lookup

    v, unit = num(claim["value"]), claim["unit"]
    if v is None or unit not in UNIT_SCALE or not claim["metric"].startswith(MEASURABLE):
        return []
    want_hw = {h.name for h in (lookup(n) for n in claim_hardware(claim)) if h}
    same, other = [], []
    for path, rep in ctx.reports:
        for m in rep.get("metrics", []):
            if m.get("name") != claim["metric"] or m.get("value") is None:
                continue
            if not config_matches(claim["configuration"], rep.get("config") or {}, m.get("labels") or {}):
                continue
            hw = identify(rep.get("environment") or {})
            (same if hw and hw.name in want_hw else other).append((path, rep, m))
    out = []
    for path, rep, m in same:
        scales = [UNIT_SCALE[unit]] + ([2**30] if unit == "GB" else [])  # "GB" may mean GiB: the closer reading
        got = m["value"] * UNIT_SCALE.get(m.get("unit"), 1.0)  # in base units (bytes, s, tokens/s, fraction)
        rel = min(abs(got / (v * s) - 1) for s in scales) if v else abs(got)
        ok = rel <= ctx.tolerance
        out.append(Finding("confirmed" if ok else "refuted", "measurement",
                           f"{path} measured {fmt(got / UNIT_SCALE[unit])} {unit} on {hardware_label(rep['environment'])}: "
                           f"{rel:.1%} from the claim (tolerance {ctx.tolerance:.0%})"))
    if not same and claim.get("hardware"):
        seen = sorted({hardware_label(r["environment"]) for _, r, _ in other})
        names = " or ".join(claim_hardware(claim))
        text = (f"no report measured {claim['metric']} on {names}; reports with this metric and configuration ran on "
                f"{', '.join(seen)} (different hardware, not comparable)" if seen else
                f"no report measured {claim['metric']} on {names} in this configuration (this project measures on "
                "Linux CPUs and NVIDIA GPUs, so it stays a feasibility check)")
        out.append(Finding(None, "measurement", text))
    return out


# --- the audit ----------------------------------------------------------------------------------------

def default_settle(claim: dict) -> str:
    hw = " or ".join(claim_hardware(claim))
    shape = ", ".join(f"{k} {v}" for k, v in claim["configuration"].items() if k in ("preset", "batch", "seq", "step"))
    if hw:
        return (f"measure {claim['metric']} on {hw}" + (f" ({shape})" if shape else "") +
                " and pass that report to harness claims --reports")
    return "a measurement of the quantity itself; the seed gives nothing to recompute it from"


def combine(findings: list[Finding]) -> tuple[str, str]:
    def has(v, basis=None):
        return [f for f in findings if f.verdict == v and (basis is None or f.basis == basis)]

    for verdict, basis in (("impossible", None), ("refuted", None), ("confirmed", "measurement"),
                           ("implausible", None), ("confirmed", None)):
        hit = has(verdict, basis)
        if hit:
            return verdict, hit[0].basis
    return "unverified", next((f.basis for f in findings if f.basis != "none"), "none")


SEVERITY = {"impossible": 0, "refuted": 1, "implausible": 2, "confirmed": 3, None: 4, "unverified": 5}


def audit_claim(claim: dict, ctx: Context) -> dict:
    from .checks import CHECKS

    findings = list(CHECKS[claim["check"]](claim, ctx))
    if claim.get("note"):
        findings.append(Finding(None, "none", f"note: {claim['note']}"))
    findings += [relation_finding(claim, r, ctx) for r in claim.get("relations", [])]
    findings += measured_findings(claim, ctx)
    verdict, basis = combine(findings)
    if verdict == "unverified" and not any("to settle" in f.evidence for f in findings):
        findings.append(Finding(None, "none", f"to settle: {claim.get('settle') or default_settle(claim)}"))
    findings.sort(key=lambda f: SEVERITY[f.verdict])
    hw = claim_hardware(claim)
    item = {k: claim[k] for k in ("id", "metric", "value") if k in claim}
    if "value_max" in claim:
        item["value_max"] = claim["value_max"]
    item.update({
        "unit": claim["unit"], "hardware": " or ".join(hw) if hw else "not stated",
        "configuration": claim["configuration"], "source": claim["source"], "quote": claim["quote"],
        "verdict": verdict, "basis": basis,
        "evidence": " | ".join(f"[{f.basis}{', ' + f.verdict if f.verdict else ''}] {f.evidence}" for f in findings),
        "findings": [asdict(f) for f in findings],
    })
    for k in ("hardware_note", "config_note", "note"):
        if claim.get(k):
            item[k] = claim[k]
    return item


def audit(doc: dict, reports=(), tolerance: float = DEFAULT_TOLERANCE) -> list[dict]:
    ctx = Context(doc, list(reports), tolerance)
    return [audit_claim(c, ctx) for c in doc["claims"]]


def verdict_counts(items: list[dict]) -> dict:
    return {v: sum(i["verdict"] == v for i in items) for v in VERDICTS}


def claims_report(items: list[dict], *, claims_file: str, report_paths, tolerance: float) -> dict:
    """A 'claims' report: make_report plus the top-level `claims` list CONTRACT.md promises."""
    from ..perf import feasibility as fz
    from ..report import make_report, metric

    counts = verdict_counts(items)
    metrics = [metric(f"claims.{v}", n, "claims", None) for v, n in counts.items()]
    metrics.append(metric("claims.total", len(items), "claims", None))
    config = {"claims_file": claims_file, "reports": list(report_paths), "tolerance": tolerance,
              "thresholds": {"mfu_implausible": fz.MFU_IMPLAUSIBLE, "bandwidth_implausible": fz.MBU_IMPLAUSIBLE}}
    r = make_report("claims", config, metrics, "ok", details={"verdict_counts": counts})
    r["claims"] = items
    return r
