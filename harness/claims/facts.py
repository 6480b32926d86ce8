"""Audits of claims that are counts and facts rather than physics: parameter counts computed exactly, preset
fields, ratios to the author's earlier projects, model construction time, data sizes, quality figures."""
from __future__ import annotations

import math
import re
import time

from reference.config import get_config, param_count

from .findings import Finding, fmt, num
from ..perf.feasibility import GiB


def _cfg(claim):
    p = claim["configuration"].get("preset")
    return get_config(p) if p else None


def _recipe_tokens(ctx, name):
    st = ctx.doc["recipes"][name]["stages"]
    lo = sum(s["steps"] * s["batch"] * s["seq"] for s in st)
    return st, lo, sum(s["steps"] * s["batch"] * s.get("accum", 1) * s["seq"] for s in st)


# --- exact computations -------------------------------------------------------------------------------

def _label_value(label: str) -> tuple[float, float]:
    """'350M' -> (350e6, 0.5e6): the value and half a unit of its last stated digit."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([KMB])\s*", label)
    if not m:
        raise ValueError(f"cannot read parameter label {label!r}")
    digits, mult = m.group(1), {"K": 1e3, "M": 1e6, "B": 1e9}[m.group(2)]
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    return float(digits) * mult, 0.5 * mult * 10 ** -decimals


def param_count_check(claim, ctx):
    cfg = _cfg(claim)
    label = claim["params"]["label"]
    want, tol = _label_value(label)
    variants = {"tied head, as the reference model": param_count(cfg),
                "untied head without bias": param_count(cfg.with_(tie_embeddings=False)),
                "untied head with bias, as the README's nn.Linear(d_model, vocab_size)":
                    param_count(cfg.with_(tie_embeddings=False)) + cfg.vocab_size}
    shape = (f"the {claim['configuration']['preset']} shape ({cfg.n_layers} layers, d_model {cfg.d_model}, {cfg.n_heads} "
             f"heads, d_ff {cfg.d_ff}, vocab {cfg.vocab_size:,}, {cfg.max_seq_len:,} positions)")
    if claim["configuration"]["preset"] == "tiny":
        shape += (" - vocab 16,000 from the log's output shape (2, 128, 16000); the 2,048 positions are inferred, as the "
                  "value that reproduces 98.9M")
    counts = "; ".join(f"{n:,} ({k})" for k, n in variants.items())
    match = [(k, n) for k, n in variants.items() if abs(n - want) <= tol]
    if match:
        return [Finding("confirmed", "exact", f"{shape} has {counts}: {match[0][1]:,} rounds to {label}")]
    near = min(variants.values(), key=lambda n: abs(n - want))
    return [Finding("refuted", "exact", f"{shape} has {counts}; {label} is {abs(want / near - 1):.1%} from the nearest "
                    f"({near:,}), beyond the label's own rounding (+-{fmt(tol)})")]


def weights_memory(claim, ctx):
    n = param_count(_cfg(claim))
    b = 4.0 * n
    v, tol = float(claim["value"]), claim.get("params", {}).get("abs_tolerance", 0.005)
    ok = min(abs(b / 1e9 - v), abs(b / GiB - v)) <= tol
    return [Finding("confirmed" if ok else "refuted", "exact",
                    f"{n:,} parameters x 4 bytes = {b / 1e9:.4g} GB ({b / GiB:.4g} GiB) of fp32 weights; weights only: "
                    f"AdamW training adds gradients and two moments ({4 * b / 1e9:.3g} GB in all) plus activations")]


def preset_field(claim, ctx):
    field, want = claim["params"]["field"], num(claim["value"])
    got = {p: getattr(get_config(p), field) for p in claim["configuration"]["presets"]}
    ok = all(v == want for v in got.values())
    return [Finding("confirmed" if ok else "refuted", "exact",
                    ", ".join(f"{p}: {field} = {v:,}" for p, v in got.items())
                    + ("; the reference model has a learned position table of that many rows" if ok else ""))]


def basic_version_ratio(claim, ctx):
    field, ours, want = claim["params"]["field"], claim["params"]["ours"], float(claim["value"])
    cands = ctx.doc["basic_versions"]
    parts = [f"{ours:,} / {c[field]:,} = {ours / c[field]:.3g}x against {c['name']} ({c['source']})" for c in cands]
    hit = [c for c in cands if abs(ours / c[field] / want - 1) <= 0.05]
    if hit:
        return [Finding("confirmed", "public record", "; ".join(parts))]
    return [Finding("refuted", "public record", f"neither of the author's earlier projects gives {fmt(want)}x: " + "; ".join(parts))]


def model_init_time(claim, ctx):
    from reference.model import GPT

    cfg = _cfg(claim)
    ts = []
    for _ in range(3):
        t0 = time.perf_counter()
        GPT(cfg)
        ts.append(time.perf_counter() - t0)
    t = min(ts)
    text = (f"building the {claim['configuration']['preset']} GPT took {t * 1e3:.2g} ms here (best of 3): MLX creates "
            "parameters lazily, so construction allocates and computes nothing and does not depend on the GPU")
    return [Finding("confirmed" if round(t, 2) == 0.0 else None, "measurement here", text)]


# --- data ---------------------------------------------------------------------------------------------

BYTES_PER_TOKEN = {"english": (3.5, 5.0), "code": (2.5, 4.5)}


def tokens_per_byte(claim, ctx):
    p = claim["params"]
    bpt = p["bytes"] / float(claim["value"])
    lo, hi = BYTES_PER_TOKEN[p["text"]]
    verdict = "implausible" if bpt > 2 * hi else None
    text = (f"{p['bytes'] / 1e6:,.4g} MB in {fmt(claim['value'])} tokens is {bpt:.1f} bytes per token; BPE vocabularies "
            f"of 32K-50K average about {lo}-{hi} bytes per token on {p['text']} (GPT-2-style BPE: ~4 characters per "
            f"English token), so more than {2 * hi:.0f} is implausible")
    if p.get("hint"):
        text += f". {p['hint']}"
    return [Finding(verdict, "feasibility", text)]


def dataset(claim, ctx):
    out = []
    for per in claim.get("params", {}).get("per", []):
        x = float(claim["value"]) / per["value"]
        lo, hi = per["typical"]
        out.append(Finding(None, "feasibility", f"{x:.0f} {claim['unit']} per {per['label']}"
                           + (f", within the usual {lo}-{hi}" if lo <= x <= hi else f", outside the usual {lo}-{hi}")))
    if not claim.get("settle") and not claim.get("relations"):
        out.append(Finding(None, "none", "to settle: collect the corpus again and count"))
    return out


def statement(claim, ctx):
    text = claim["configuration"].get("text")
    if text and claim["metric"] == "tokenizer.tokens":
        n = float(claim["value"])
        return [Finding(None, "feasibility", f"{fmt(n)} tokens for {len(text)} characters: {len(text) / n:.1f} characters "
                        "per token, ordinary for a 32K BPE")]
    return []


def quality(claim, ctx):
    c, cfg = claim["configuration"], _cfg(claim)
    out = []
    if claim["metric"] == "train.loss" and c.get("stage") == "pretrain" and c.get("step") == 0:
        V = cfg.vocab_size
        out.append(Finding("implausible", "feasibility",
                           f"a freshly initialised model predicts almost uniformly over its {V:,}-token vocabulary (GPT-2 "
                           f"initialisation, weights with std 0.02, gives logits near 0), so its loss is about ln({V:,}) = "
                           f"{math.log(V):.2f} nats; {fmt(claim['value'])} at step 0 is the loss of a partly trained model"))
    _, lo, hi = _recipe_tokens(ctx, c.get("recipe", "readme"))
    where = f" at step {c['step']:,} of {c['stage']}" if "step" in c else " after the full recipe"
    out.append(Finding(None, "none", f"to settle: train the {c['preset']} preset with the README recipe ({lo / 1e9:.3g}B-"
                       f"{hi / 1e9:.3g}B tokens) and evaluate the checkpoint{where} (harness train / harness eval with "
                       "config recipe 'readme'); no such checkpoint exists here"))
    return out


def twin_ratio(claim, ctx):
    from .twin import twin_findings

    return twin_findings(claim, ctx)
