"""One audit per kind of claim (the `check` field of fixtures/claims/seed-claims.json), and the registry
CHECKS. This module holds the physical checks (FLOP/s, bandwidth, memory against the hardware table);
harness.claims.facts the exact and factual ones. Each returns Findings; harness.claims.audit combines them with the
claim's relations and any matching measurements."""
from __future__ import annotations

from reference.config import (forward_flops_per_token, get_config, non_embedding_params, param_count,
                              train_flops_per_token)

from ..perf import feasibility as fz
from .facts import (GiB, _cfg, _recipe_tokens, basic_version_ratio, dataset, model_init_time, param_count_check,
                          preset_field, quality, statement, tokens_per_byte, twin_ratio, weights_memory)
from .findings import UNIT_SCALE, Finding, claim_hardware, fmt
from ..perf.hardware import lookup


def _hws(claim):
    return [h for h in (lookup(n) for n in claim_hardware(claim)) if h]


def _fastest(hws):
    return max(((h, *h.max_peak()) for h in hws), key=lambda t: t[1])


def _compute_bound(needed: float, hws, what: str, *, floor: float | None = None) -> Finding:
    hw, peak, dtype = _fastest(hws)
    frac = needed / peak
    verdict = fz.utilisation_verdict(frac, fz.MFU_IMPLAUSIBLE)
    text = (f"{what} = {needed / 1e12:.3g} TFLOP/s, {frac:.2g}x the {hw.name}'s {peak / 1e12:.3g} TFLOP/s {dtype} peak"
            + (f" (the fastest of {', '.join(h.name for h in hws)})" if len(hws) > 1 else ""))
    if verdict == "impossible" and floor and floor > peak:
        text += f"; the 6N term alone (no attention) already needs {floor / peak:.2g}x"
    elif verdict == "implausible":
        text += f": above the {fz.MFU_IMPLAUSIBLE:.0%} MFU that the best published training runs stay under"
    elif verdict is None:
        text += f": needs {frac:.0%} MFU, physically feasible; only a measurement on that machine can confirm it"
    return Finding(verdict, "feasibility", text)


def _recipe_flops(ctx, name, cfg):
    """Training FLOPs of a recipe: (reading --batch-size as the whole step, with accumulation on top)."""
    st = ctx.doc["recipes"][name]["stages"]
    per = [s["steps"] * s["batch"] * s["seq"] * train_flops_per_token(cfg, s["seq"]) for s in st]
    return sum(per), sum(f * s.get("accum", 1) for f, s in zip(per, st))


# --- training -----------------------------------------------------------------------------------------

def train_throughput(claim, ctx):
    cfg, seq = _cfg(claim), claim["configuration"].get("seq")
    tps = float(claim["value"])
    fpt, how = fz.training_flops_per_token(cfg, seq)
    return [_compute_bound(tps * fpt, _hws(claim), f"{fmt(tps)} tokens/s x {fpt / 1e9:.3g} GFLOP/token ({how})",
                           floor=tps * 6 * non_embedding_params(cfg))]


def train_memory(claim, ctx):
    c, cfg = claim["configuration"], _cfg(claim)
    n = param_count(cfg) if cfg else int(c["params"])
    claimed = float(claim["value"]) * GiB  # "GB" read as GiB: the larger, more favourable reading
    what = f"{fmt(claim['value'])} GB (read as GiB)"
    floor = fz.memory_floor(n)
    if claimed < floor.total:
        return [Finding("impossible", "feasibility", f"{what} is below the {floor.describe()} for {n:,} parameters")]
    if not (cfg and c.get("batch") and c.get("seq")):
        return [Finding(None, "feasibility", f"{what} is above the {floor.describe()} for {n:,} parameters; batch and "
                        "sequence length are not stated, so activations cannot be bounded")]
    B, T = c["batch"], c["seq"]
    lean, plain = fz.memory_lean(cfg, B, T), fz.memory_plain(cfg, B, T, fused_attention=True)
    shape = f"{c['preset']} at {B} x {T}"
    if claimed < lean.total:
        return [Finding("implausible", "feasibility", f"{what} is below the {lean.describe()} for {shape}: even every "
                        "saving at once does not fit")]
    text = f"{what} is above the {lean.describe()} for {shape}"
    if claimed < plain.total:
        text += f"; the {plain.describe()} is larger, so it needs activation checkpointing and 16-bit activations"
    machine = claim.get("params", {}).get("machine_memory_gb")
    if machine and plain.total > machine * GiB:
        text += f"; without those the {machine} GB machine could not hold it"
    return [Finding(None, "feasibility", text)]


def train_time(claim, ctx):
    c, cfg = claim["configuration"], _cfg(claim)
    steps, B, A, T = c["step"], c["batch"], c.get("accum", 1), c["seq"]
    secs = float(claim["value"]) * UNIT_SCALE[claim["unit"]]
    lo, hi = steps * B * T / secs, steps * B * A * T / secs
    fpt = train_flops_per_token(cfg, T)
    out = [_compute_bound(lo * fpt, _hws(claim),
                          f"{steps:,} steps x {B} x {T} tokens in {fmt(claim['value'])} {claim['unit']} = {fmt(lo)} tokens/s "
                          f"(reading --batch-size as the whole step; with the {A}x accumulation on top {fmt(hi)} tokens/s) "
                          f"x {fpt / 1e9:.3g} GFLOP/token")]
    ref = claim.get("params", {}).get("tokens_per_s_claim")
    if ref:
        stated = float(ctx.by_id[ref]["value"])
        best = min((lo, hi), key=lambda x: abs(x / stated - 1))
        agree = abs(best / stated - 1) <= 0.10
        text = (f"the time implies {fmt(lo)} or {fmt(hi)} tokens/s (without/with accumulation); the same row says "
                f"{fmt(stated)} tokens/s ({ref}), at which {steps:,} steps take "
                f"{steps * B * T / stated / 3600:.3g}-{steps * B * A * T / stated / 3600:.3g} h")
        out.append(Finding(None if agree else "refuted", "seed's own numbers", ("agrees: " if agree else "") + text))
    return out


def pipeline_time(claim, ctx):
    c, cfg = claim["configuration"], _cfg(claim)
    st, lo_tok, hi_tok = _recipe_tokens(ctx, c["recipe"])
    f_lo, f_hi = _recipe_flops(ctx, c["recipe"], cfg)
    secs = float(claim["value"]) * UNIT_SCALE[claim["unit"]]
    stages = " + ".join(f"{s['name']} {s['steps']:,} steps x {s['batch']} x {s['seq']}" for s in st)
    epochs = ", ".join(f"{s['steps'] * s['batch'] * s['seq'] / s['corpus_tokens']:.0f}-"
                       f"{s['steps'] * s['batch'] * s.get('accum', 1) * s['seq'] / s['corpus_tokens']:.0f} epochs of the "
                       f"{fmt(s['corpus_tokens'] / 1e6)}M-token {s['name']} corpus" for s in st if s.get("corpus_tokens"))
    f = _compute_bound(f_lo / secs, _hws(claim),
                       f"the README recipe ({stages}) is {lo_tok / 1e9:.3g}B tokens ({hi_tok / 1e9:.3g}B counting "
                       f"accumulation; {epochs}) = {f_lo:.3g} FLOP for {c['preset']}, over {fmt(claim['value'])} h")
    hw, peak, _ = _fastest(_hws(claim))
    text = f.evidence + f"; at 100% of that peak it takes {f_lo / peak / 86400:.3g}-{f_hi / peak / 86400:.3g} days"
    verdict = f.verdict
    if claim.get("params", {}).get("recipe_assumed") and verdict == "impossible":
        verdict, text = "implausible", text + " (impossible if the medium recipe applies; the README gives none for this preset)"
    return [Finding(verdict, "feasibility", text)]


# --- generation ---------------------------------------------------------------------------------------

def _fastest_bw(hws):
    return max((h for h in hws if h.bandwidth), key=lambda h: h.bandwidth)


def decode_throughput(claim, ctx):
    cfg, ctxlen, tps = _cfg(claim), claim["configuration"]["seq"], float(claim["value"])
    hw = _fastest_bw(_hws(claim))
    b16, b32 = fz.decode_bytes_per_token(cfg, ctxlen, 2), fz.decode_bytes_per_token(cfg, ctxlen, 4)
    bound = hw.bandwidth / b16
    frac = tps / bound
    verdict = fz.utilisation_verdict(frac, fz.MBU_IMPLAUSIBLE)
    text = (f"batch-1 decoding reads every weight once per token: {b16 / 1e9:.3g} GB in fp16 (non-embedding weights and "
            f"head, plus the KV cache at {ctxlen} tokens); the {hw.name}'s {hw.bandwidth / 1e9:.0f} GB/s allows "
            f"{bound:.0f} tokens/s ({hw.bandwidth / b32:.0f} in fp32); {fmt(tps)} tokens/s is {frac:.0%} of the fp16 bound")
    if verdict is None:
        text += ": feasible; only a measurement on that machine can confirm it"
    return [Finding(verdict, "feasibility", text)]


def first_token_latency(claim, ctx):
    cfg, P = _cfg(claim), claim["configuration"]["seq"]
    t = float(claim["value"]) * UNIT_SCALE[claim["unit"]]
    hws = _hws(claim)
    hw_bw, (hw, peak, dtype) = _fastest_bw(hws), _fastest(hws)
    read = fz.decode_bytes_per_token(cfg, 0, 2) / hw_bw.bandwidth
    if t < read:
        return [Finding("impossible", "feasibility", f"{t * 1e3:.3g} ms is less than reading the fp16 weights once "
                        f"({read * 1e3:.3g} ms at {hw_bw.bandwidth / 1e9:.0f} GB/s)")]
    pf = fz.prefill_flops(cfg, P)
    frac = pf / t / peak
    under = fz.utilisation_verdict(frac, fz.MFU_IMPLAUSIBLE)
    text = (f"the table does not say how long the prompt is. If 'Seq Length' {P} is the prompt, prefill is "
            f"{pf / 1e9:.0f} GFLOP and {t * 1e3:.3g} ms needs {pf / t / 1e12:.3g} TFLOP/s = {frac:.2g}x the {hw.name}'s "
            f"{peak / 1e12:.3g} TFLOP/s {dtype} peak" + (f" ({under} under that reading)" if under else "")
            + f"; with a short prompt the bound is reading the weights once, {read * 1e3:.2g} ms, so the claim stays open")
    return [Finding(None, "feasibility", text)]


def forward_time(claim, ctx):
    c, cfg = claim["configuration"], _cfg(claim)
    B, T, t = c["batch"], c["seq"], float(claim["value"]) * UNIT_SCALE[claim["unit"]]
    flops = B * T * forward_flops_per_token(cfg, T)
    hw, peak, dtype = _fastest(_hws(claim))
    frac = flops / t / peak
    verdict = fz.utilisation_verdict(frac, fz.MFU_IMPLAUSIBLE)
    text = (f"{B} x {T} tokens x {forward_flops_per_token(cfg, T) / 1e6:.0f} MFLOP/token = {flops / 1e9:.3g} GFLOP in "
            f"{t * 1e3:.4g} ms = {flops / t / 1e9:.0f} GFLOP/s, {frac:.1%} of the {hw.name}'s {dtype} peak")
    if verdict is None:
        text += ": feasible (slow for that GPU; a 256-token batch is launch-bound); needs a measurement on an M1 Max"
    return [Finding(verdict, "feasibility", text)]


# --- capacity, precision, memory savings, costs -------------------------------------------------------

def max_params(claim, ctx):
    n = float(claim["value"])
    floor, grads = fz.memory_floor(int(n)).total, 4.0 * n
    hw = _hws(claim)[0]
    xl = param_count(get_config("xlarge"))
    return [Finding(None, "feasibility",
                    f"{fmt(n / 1e9)}B parameters need {floor / GiB:.1f} GiB for fp32 weights and AdamW moments, "
                    f"{(floor + grads) / GiB:.1f} GiB with gradients, before activations: within the {hw.name}'s largest "
                    f"{hw.memory_bytes / GiB:.0f} GiB configuration; the README's own xlarge preset is labelled 1.5B and has "
                    f"{xl:,} parameters, beyond 'up to 1B'")]


def precision_speedup(claim, ctx):
    c, cfg = claim["configuration"], _cfg(claim)
    hw = _hws(claim)[0]
    r = hw.flops.get("fp16", 0) / hw.flops["fp32"]
    M, d = c["batch"] * c["seq"], cfg.d_model
    inten = fz.matmul_intensity(M, d, cfg.d_ff, 4)
    balance = hw.flops["fp32"] / hw.bandwidth
    text = (f"the {hw.name}'s fp16 peak is {r:.2g}x its fp32 peak ({hw.flops_source}); the MLP matmul of {c['preset']} at "
            f"{c['batch']} x {c['seq']} ({M} x {d} by {d} x {cfg.d_ff}) does {inten:.0f} FLOP per byte in fp32, above the "
            f"chip's balance point of {balance:.0f} FLOP/byte, so it is compute-bound: halving bytes cannot make it 2x faster "
            "and only memory-bound operations (norms, softmax, the optimizer update) gain")
    verdict = "implausible" if r < 1.2 and inten > balance else None
    return [Finding(verdict, "feasibility", text)]


def checkpointing_memory(claim, ctx):
    c, cfg = claim["configuration"], _cfg(claim)
    parts = []
    for B, T in ((c["batch"], c["seq"]), (1, 512)):
        plain, ck = fz.memory_plain(cfg, B, T), fz.memory_checkpointed(cfg, B, T)
        parts.append(f"{B} x {T}: {plain.total / GiB:.0f} -> {ck.total / GiB:.1f} GiB, {1 - ck.total / plain.total:.0%} less")
    text = (f"the saving depends on the shape; for {c['preset']} (fp32, attention scores stored, full checkpointing) the "
            f"model predicts {'; '.join(parts)}; a single figure of {fmt(claim['value'])}% holds for one shape at most")
    out = [Finding(None, "feasibility", text)]
    out += _checkpoint_measurements(ctx)
    out.append(Finding(None, "none", "to settle: train one preset and shape twice, with and without --grad-checkpoint, "
                       "and compare train.peak_memory_bytes"))
    return out


def _checkpoint_measurements(ctx):
    """Pairs of train.peak_memory_bytes measured with and without gradient checkpointing (flag in the metric's
    labels, as harness bench writes it, or in the report config, as harness train does), all else equal."""
    import json

    from ..environment import hardware_label

    groups = {}
    for path, rep in ctx.reports:
        cfg = {k: v for k, v in (rep.get("config") or {}).items() if k not in ("out", "data")}
        for m in rep.get("metrics", []):
            if m["name"] != "train.peak_memory_bytes" or not m.get("value"):
                continue
            labels = dict(m.get("labels") or {})
            flag, rest = labels.pop("grad_checkpoint", None), {}
            if flag is None:
                rest = dict(cfg)
                flag = rest.pop("grad_checkpoint", None)
            if flag not in (True, False, "on", "off"):
                continue
            key = (hardware_label(rep["environment"]), json.dumps([labels, rest], sort_keys=True, default=str))
            groups.setdefault(key, {})[flag in (True, "on")] = (path, m["value"])
    out = []
    for (hw, _), g in groups.items():
        if True in g and False in g:
            on, off = g[True][1], g[False][1]
            out.append(Finding(None, "measurement", f"{g[True][0]} vs {g[False][0]} on {hw}: peak memory {off / GiB:.2f} -> "
                               f"{on / GiB:.2f} GiB with checkpointing, {1 - on / off:.0%} less (this project's trainer)"))
    return out


def _gpu_hours(flops, mfu, hw):
    return flops / (hw.flops["bf16"] * mfu) / 3600


def cost(claim, ctx):
    cfg, recipe = _cfg(claim), claim["configuration"]["recipe"]
    f_lo, f_hi = _recipe_flops(ctx, recipe, cfg)
    h100 = lookup("H100 SXM")
    h_lo, h_hi = _gpu_hours(f_lo, 0.5, h100), _gpu_hours(f_hi, 0.3, h100)
    v, vmax = float(claim["value"]), float(claim.get("value_max", claim["value"]))
    return [Finding(None, "feasibility",
                    f"the README recipe is {f_lo:.2g}-{f_hi:.2g} FLOP (without/with accumulation); one {h100.name} at 30-50% "
                    f"MFU of its {h100.flops['bf16'] / 1e12:.0f} TFLOP/s bf16 peak needs {h_lo:.0f}-{h_hi:.0f} GPU-hours, so "
                    f"${v:,.0f}-{vmax:,.0f} means ${v / h_hi:.0f}-{vmax / h_lo:.0f} per GPU-hour; a price is not physics, "
                    "so the figure stays unverified")]


def local_cost(claim, ctx):
    cfg, recipe = _cfg(claim), claim["configuration"]["recipe"]
    f_lo, f_hi = _recipe_flops(ctx, recipe, cfg)
    hw, peak, dtype = _fastest(_hws(claim))
    d_lo, d_hi = f_lo / peak / 86400, f_hi / peak / 86400
    return [Finding(None, "feasibility",
                    f"'$0' leaves out the machine and its electricity; at 100% of the {hw.name}'s {peak / 1e12:.3g} TFLOP/s "
                    f"the README recipe takes {d_lo:.0f}-{d_hi:.0f} days ({d_lo / 0.4:.0f}-{d_hi / 0.4:.0f} at 40% MFU), "
                    "not the ~48 hours the README states")]


def max_batch_ratio(claim, ctx):
    cfg, T = get_config("medium"), 2048
    plain = fz.memory_plain(cfg, 1, T, fused_attention=True).parts["activations"]
    ck = fz.memory_checkpointed(cfg, 1, T)
    per_seq_ck = ck.parts["layer inputs"] + ck.parts["one layer recomputed"]
    return [Finding(None, "feasibility",
                    f"at a fixed memory budget the batch is bounded by activations: the medium preset at {T} tokens keeps "
                    f"{plain / GiB:.2f} GiB per sequence in fp32 without recomputation ({per_seq_ck / GiB:.2f} GiB with full "
                    "checkpointing); with the same model, precision and recomputation a framework cannot halve that, so 2x "
                    "larger batches need a different memory strategy, not a different framework"),
            Finding(None, "none", "to settle: find the largest batch that trains without running out of memory in MLX "
                    "and in the PyTorch twin on the same machine, same preset, sequence length and precision")]


CHECKS = {
    "train_throughput": train_throughput, "train_memory": train_memory, "train_time": train_time,
    "pipeline_time": pipeline_time, "decode_throughput": decode_throughput, "first_token_latency": first_token_latency,
    "forward_time": forward_time, "param_count": param_count_check, "weights_memory": weights_memory,
    "preset_field": preset_field, "basic_version_ratio": basic_version_ratio, "model_init_time": model_init_time,
    "max_params": max_params, "precision_speedup": precision_speedup, "checkpointing_memory": checkpointing_memory,
    "cost": cost, "local_cost": local_cost, "max_batch_ratio": max_batch_ratio, "tokens_per_byte": tokens_per_byte,
    "dataset": dataset, "statement": statement, "quality": quality, "twin_ratio": twin_ratio,
}
