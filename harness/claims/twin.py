"""MLX vs the PyTorch twin: pair measurements of one metric labelled framework=mlx and framework=torch taken
in the same environment and configuration, and report their ratio for what it is (where it was measured)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .findings import ROOT, Finding, claim_hardware, fmt, num

BASELINES = {"torch": "PyTorch (eager)", "torch-compile": "PyTorch (torch.compile)"}


def _centre(m: dict) -> tuple[float, list]:
    s = [float(x) for x in m.get("samples") or []]
    return (float(np.median(s)) if s else float(m["value"])), s


def _short(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return path


def twin_pairs(reports, metric: str) -> list[dict]:
    """Every (mlx, torch) pair of `metric` with equal environment hardware, config and other labels."""
    from ..environment import hardware_label

    groups = {}
    for path, rep in reports:
        for m in rep.get("metrics", []):
            labels = dict(m.get("labels") or {})
            fw = labels.pop("framework", None)
            if m.get("name") != metric or fw not in ("mlx", *BASELINES) or m.get("value") is None:
                continue
            cfg = {k: v for k, v in (rep.get("config") or {}).items() if k not in ("framework", "out", "output")}
            key = (hardware_label(rep["environment"]), json.dumps(cfg, sort_keys=True, default=str),
                   json.dumps(labels, sort_keys=True, default=str))
            groups.setdefault(key, {}).setdefault(fw, (path, rep, m, labels))
    return [{"hardware": k[0], "labels": g["mlx"][3], "config": g["mlx"][1].get("config") or {}, "baseline": fw,
             "environment": g["mlx"][1]["environment"], "mlx": g["mlx"][:3:2], "torch": g[fw][:3:2]}
            for k, g in groups.items() if "mlx" in g for fw in BASELINES if fw in g]


def twin_findings(claim: dict, ctx) -> list[Finding]:
    from ..perf.compare import ratio_ci
    from ..perf.hardware import identify, lookup

    metric = claim["params"]["metric"]
    memory = metric != "train.tokens_per_s"
    pairs = twin_pairs(ctx.reports, metric)
    names = " or ".join(claim_hardware(claim)) or "the claimed hardware"
    settle = Finding(None, "none", f"to settle: run the same training step in MLX and in the PyTorch twin (MPS) on {names}, "
                     f"same preset, batch, sequence length and precision, and compare {metric}")
    if not pairs:
        return [Finding(None, "twin", f"no twin comparison report: none has {metric} metrics labelled framework=mlx and "
                        "framework=torch for one configuration"), settle]
    want = {h.name for h in (lookup(n) for n in claim_hardware(claim)) if h}
    v, vmax = num(claim["value"]), num(claim.get("value_max", claim["value"]))
    out = []
    for p in pairs:
        (pm, mm), (pt, mt) = p["mlx"], p["torch"]
        (cm, sm), (ct, st) = _centre(mm), _centre(mt)
        ci = ratio_ci(st, sm)
        shape = ", ".join(f"{k} {p['labels'].get(k, p['config'].get(k))}" for k in ("preset", "batch", "seq", "dtype")
                          if p["labels"].get(k, p["config"].get(k)) is not None)
        base = BASELINES[p["baseline"]]
        if memory:
            got = 100.0 * (1 - cm / ct)
            what = f"MLX uses {fmt(cm / 2**30)} GiB vs {base} {fmt(ct / 2**30)} GiB: {got:+.0f}% saving"
            if ci:
                what += f" (95% CI {100 * (1 - ci[1]):+.0f}% to {100 * (1 - ci[0]):+.0f}%)"
        else:
            got = cm / ct
            what = f"MLX {fmt(cm)} vs {base} {fmt(ct)} {mm.get('unit', '')}: {got:.2f}x" + (
                f" (95% CI {ci[0]:.2f}-{ci[1]:.2f}x)" if ci else "")
        text = f"{_short(pm)}" + (f" / {_short(pt)}" if pt != pm else "") + f" on {p['hardware']} ({shape}): {what}"
        hw = identify(p["environment"])
        if hw and hw.name in want:
            ok = v * (1 - ctx.tolerance) <= got <= vmax * (1 + ctx.tolerance)
            out.append(Finding("confirmed" if ok else "refuted", "measurement", text))
        else:
            out.append(Finding(None, "twin", text + f"; measured on {p['hardware']}, not {names}: reported as what it is, "
                               "it neither confirms nor refutes the claim"))
    return out + [settle]
