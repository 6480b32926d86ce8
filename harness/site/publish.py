"""Reports -> README-ready markdown tables (with a hardware and versions footer, as mlx-lm's BENCHMARKS.md
has) and SVG plots (site/svg.py, as on the site): throughput per configuration, loss curves, claimed vs measured."""
from __future__ import annotations

from pathlib import Path

from ..environment import hardware_label
from ..errors import UsageError
from ..numbers import fmt as _fmt
from ..report import atomic_write_text, find_reports, get_metric, scored
from .html import esc as _esc


def cell(v, unit: str = "") -> str:
    """A table cell: numbers.fmt with percentages to one decimal, so a column lines up."""
    return _fmt(v, unit, percent_places=1)


def load_all(paths: list[str | Path]) -> list[tuple[Path, dict]]:
    return find_reports(paths, who="publish")


def _spread(m: dict | None) -> str:
    """The value with its 95% interval when the report has one (stats.ci95), else ±IQR/2; n samples."""
    if not m:
        return "–"
    s = m.get("stats")
    if s and s.get("ci95") and None not in s["ci95"]:
        lo, hi = s["ci95"]
        runs = f", {len(m['runs'])} runs" if len(m.get("runs") or []) > 1 else ""
        return f"{_fmt(m['value'], m['unit'])} [{_fmt(lo, m['unit'])}, {_fmt(hi, m['unit'])}] (n={s['n']}{runs})"
    if s and s["n"] > 1:
        return f"{cell(m['value'], m['unit'])} (±{cell(s['iqr'] / 2, m['unit'])}, n={s['n']})"
    return cell(m["value"], m["unit"])


def mfu_at_median(ms: dict) -> float | None:
    """train.mfu of a bench report at the median tokens/s. Bench reports written before train.mfu kept per-step
    samples computed it at the upper-middle step (sorted(tokens/s)[n // 2]), which for an even n is above the
    median that train.tokens_per_s reports: rescaled here, exactly, since MFU is proportional to tokens/s."""
    m, t = ms.get("train.mfu") or {}, ms.get("train.tokens_per_s") or {}
    if m.get("value") is None or m.get("samples"):
        return m.get("value")
    xs = sorted(t.get("samples") or [])
    if not xs or not t.get("value"):
        return m["value"]
    return m["value"] * t["value"] / xs[len(xs) // 2]


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _label_groups(metrics) -> dict[tuple, dict]:
    """A report's metrics grouped by their labels: sorted (label, str(value)) pairs -> {metric name: metric}."""
    groups: dict[tuple, dict] = {}
    for m in metrics:
        key = tuple(sorted((k, str(v)) for k, v in (m.get("labels") or {}).items()))
        groups.setdefault(key, {})[m["name"]] = m
    return groups


def bench_rows(reports):
    rows = []
    for f, r in reports:
        if r["kind"] != "bench":
            continue
        for key, ms in _label_groups(r["metrics"]).items():
            lab = dict(key)
            if not any(n.startswith(("train.", "gen.")) for n in ms):
                continue
            rows.append((f, r, lab, ms))
    return rows


def section_bench(reports) -> str:
    rows = []
    for f, r, lab, ms in bench_rows(reports):
        fw = lab.get("framework", "mlx")
        if lab.get("variant"):  # scripts/gpu/ablate.py: the variant tells the rows apart
            fw = f"{fw} [{lab['variant']}]"
        elif lab.get("dropout") is not None:
            fw = f"{fw} [dropout {lab['dropout']}]"
        rows.append([lab.get("preset", r["config"].get("preset", "?")), fw,
                     f"{lab.get('batch', '?')}x{lab.get('seq', '?')}", lab.get("dtype", "?"),
                     lab.get("grad_checkpoint", "off"),
                     _spread(ms.get("train.tokens_per_s")), _spread(ms.get("train.step_time_s")),
                     cell((ms.get("train.peak_memory_bytes") or {}).get("value"), "bytes"),
                     cell(mfu_at_median(ms), "ratio"),
                     _spread(ms.get("gen.tokens_per_s")),
                     cell((ms.get("gen.first_token_s") or {}).get("value")),
                     hardware_label(r["environment"]), f.name])
    if not rows:
        return ""
    return "### Speed and memory\n\n" + _table(
        ["preset", "framework", "batch x seq", "dtype", "grad ckpt", "train tok/s (median [95% CI] or ±IQR/2)", "step s",
         "peak mem", "MFU", "gen tok/s", "first token s", "hardware", "report"], rows)


def passk_rows(reports) -> list[tuple[str, str, int, dict[str, str]]]:
    """Generation tokens/s of n rows of one prompt (bench reports whose gen.tokens_per_s has an `n` label):
    (preset, hardware, n, {framework: median [spread] (report)}), one row per preset, hardware and n."""
    table: dict[tuple, dict[str, str]] = {}
    for f, r, lab, ms in bench_rows(reports):
        m = ms.get("gen.tokens_per_s")
        if m is None or "n" not in lab:
            continue
        key = (lab.get("preset", r["config"].get("preset", "?")), hardware_label(r["environment"]), int(lab["n"]))
        cell = table.setdefault(key, {})
        fw, text = lab.get("framework", "mlx"), f"{_spread(m)} ({f.name})"
        cell[fw] = f"{cell[fw]}; {text}" if fw in cell else text  # several reports: each one named
    return [(p, hw, n, fws) for (p, hw, n), fws in sorted(table.items())]


PASSK_FRAMEWORKS = ("mlx", "mlx-lm", "torch", "torch-compile")


def section_passk(reports) -> str:
    rows = [[p, str(n), *(fws.get(fw, "") for fw in PASSK_FRAMEWORKS), hw] for p, hw, n, fws in passk_rows(reports)]
    if not rows or all(r[1] == "1" for r in rows):
        return ""
    return ("### pass@k sampling: n rows of one prompt decoded together (gen tok/s summed over rows)\n\n"
            + _table(["preset", "n", "MLX (reference.generate)", "mlx-lm BatchGenerator", "PyTorch twin eager",
                      "twin, CUDA graphs", "hardware"], rows))


def section_train(reports) -> str:
    rows = []
    for f, r in reports:
        if r["kind"] != "train":
            continue
        c = r["config"]
        rows.append([c.get("preset", "?"), c.get("stage", "?"), str((r.get("details") or {}).get("final_step", c.get("steps", "?"))),
                     cell((get_metric(r, "train.loss") or {}).get("value")),
                     cell((get_metric(r, "train.val_loss") or {}).get("value")),
                     _spread(get_metric(r, "train.tokens_per_s")),
                     cell((get_metric(r, "train.mfu") or {}).get("value"), "ratio"),  # harness train: at the median
                     hardware_label(r["environment"]), f.name])
    if not rows:
        return ""
    return "### Training runs\n\n" + _table(
        ["preset", "stage", "steps", "final loss", "val loss", "tok/s", "MFU", "hardware", "report"], rows)


EVAL_METRICS = ("eval.pass@1", "eval.pass@10", "eval.syntax.bash_n", "eval.syntax.bashlex",
                "eval.shellcheck_clean", "eval.no_code_rate", "eval.bleu", "eval.codebleu")


def section_eval(reports) -> str:
    rows = []
    for f, r in reports:
        if r["kind"] != "eval":
            continue
        c = r["config"]
        t = c.get("tasks") if isinstance(c.get("tasks"), dict) else {}
        src = f"{t.get('name', '?')} {t.get('version', '')}".strip()
        from ..models import model_label

        what = model_label(c) or Path(str(c.get("samples") or "canonical solutions")).name
        npt = c.get("n_per_task")
        if isinstance(npt, dict):
            npt = npt["min"] if npt.get("min") == npt.get("max") else f"{npt.get('min')}-{npt.get('max')}"
        if not scored(r):  # --generate-only: samples without scores
            rows.append([what, src, _generated_per_task(c), "not scored (--generate-only)",
                         *("–" for _ in EVAL_METRICS[1:]), f.name])
            continue
        vals = [cell((get_metric(r, n) or {}).get("value"), "ratio" if "pass@" in n or "syntax" in n
                     or "clean" in n or "rate" in n else "") for n in EVAL_METRICS]
        ci = ((get_metric(r, "eval.pass@1") or {}).get("stats") or {}).get("ci95")
        if ci and vals[0] != "–":
            vals[0] += f" [{_fmt(ci[0], 'ratio')}, {_fmt(ci[1], 'ratio')}]"
        rows.append([what, src, str(npt if npt is not None else "?"), *vals, f.name])
    if not rows:
        return ""
    return "### Evaluation\n\n" + _table(["samples", "tasks", "n/task", "pass@1 [95% CI]", "pass@10", "bash -n ok",
                                           "bashlex ok", "shellcheck clean", "no code", "BLEU", "CodeBLEU", "report"],
                                          rows)


def _generated_per_task(config: dict) -> str:
    """The samples per task an eval report generated (config.sampling.n), "?" where it names none."""
    n = config.get("sampling", {}).get("n") if isinstance(config.get("sampling"), dict) else None
    return str(n if n is not None else "?")


def section_sampling(reports) -> str:
    """How fast each eval report's samples were generated (eval.sampling_*), one row per report: two runs of
    the same checkpoint before and after a decoder change sit side by side."""
    from ..models import model_label
    from ..models.speed import generation_label

    rows = []
    shown = {(r.get("created_at"), r["config"].get("samples_sha256")) for _, r in reports if r["kind"] == "eval"}
    for f, r in reports:
        if r["kind"] != "eval" or get_metric(r, "eval.sampling_s") is None:
            continue
        c = r["config"]
        origin = c.get("sampled_by") or {}  # scored later: the sampling was the report that generated the samples
        if origin and (origin.get("created_at"), c.get("samples_sha256")) in shown:
            continue  # that report has its row already
        hardware = origin.get("hardware") or hardware_label(r["environment"])
        ms = {n: get_metric(r, f"eval.sampling_{n}") for n in
              ("s", "samples", "tokens", "tokens_per_s", "decode_tokens_per_s", "first_token_s")}
        rows.append([model_label(c) or "?", generation_label(c) or "?", _generated_per_task(c),
                     *(cell((ms[k] or {}).get("value"), u) for k, u in (("samples", ""), ("s", "s"), ("tokens", ""),
                                                                        ("tokens_per_s", ""))),
                     _spread(ms["decode_tokens_per_s"]), _spread(ms["first_token_s"]),
                     "yes" if scored(r) else "no", hardware, f.name])
    if not rows:
        return ""
    return ("### Sampling speed (harness eval)\n\nWall time of generating every sample (model loading excluded); "
            "tokens/s = generated tokens / that time; decode tokens/s and first-token latency per call (the samples "
            "of one prompt decoded together), median [95% CI].\n\n"
            + _table(["model", "decoder", "n/task", "samples", "sampling s", "tokens", "tok/s", "decode tok/s per call",
                      "first token s", "scored", "hardware", "report"], rows))


def section_claims(reports) -> str:
    out = []
    for f, r in reports:
        if r["kind"] != "claims" or not r.get("claims"):
            continue
        counts: dict[str, int] = {}
        for c in r["claims"]:
            counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
        out.append(f"### Claims audit ({f.name})\n\n" + ", ".join(f"**{k}**: {v}" for k, v in sorted(counts.items())))
        rows = [[c["id"], f"{c['metric']} = {c['value']} {c['unit']}", c.get("hardware") or "–", c["verdict"],
                 str(c["evidence"]).replace("|", "/").replace("\n", " ")[:220]] for c in r["claims"]]
        out.append(_table(["id", "claim", "hardware", "verdict", "evidence"], rows))
    return "\n\n".join(out)


def section_scaling(reports) -> str:
    """`harness scaling` reports: one row per world size of each group (the 1-process baseline first)."""
    rows = []
    for f, r in reports:
        if r["kind"] != "scaling":
            continue
        runs = []  # (labels but the world size, world size, {name: metric})
        for key, ms in _label_groups(r["metrics"]).items():
            lab = dict(key)
            ws = lab.pop("world_size", None)
            runs.append((lab, None if ws is None else int(ws), ms))
        for lab, ws, ms in sorted(runs, key=lambda run: (sorted(run[0].items()), run[1] or 0)):

            def val(name, unit=""):
                return cell((ms.get(name) or {}).get("value"), unit)

            eff = ms.get("scaling.efficiency")
            eff_s = "–" if ws == 1 else val("scaling.efficiency", "fraction")
            if eff and eff.get("interval"):
                eff_s += f" [{100 * eff['interval'][0]:.1f}, {100 * eff['interval'][1]:.1f}]"

            def agree(name):
                m = ms.get(name)
                return "–" if not m or m.get("value") is None else f"{m['value']:.1e}"

            rows.append([" ".join(str(lab[k]) for k in ("preset", "dtype") if lab.get(k) is not None) or "?",
                         f"{lab.get('global_batch', '?')}x{lab.get('seq_len', '?')}",
                         str(ws), _spread(ms.get("scaling.tokens_per_s")),
                         "1 (baseline)" if ws == 1 else f"{val('scaling.speedup')}x", eff_s,
                         "–" if ws == 1 else f"{agree('scaling.loss_max_rel_diff')} / "
                                             f"{agree('scaling.val_loss_max_rel_diff')}",
                         hardware_label(r["environment"]), f.name])
    if not rows:
        return ""
    return ("### Data-parallel scaling\n\nSame global batch on 1 and N processes (strong scaling): speedup = median "
            "tokens/s over the 1-process run's, efficiency = speedup / N (95% bootstrap interval); loss agreement = "
            "largest relative difference from the 1-process run's loss over the common steps.\n\n" + _table(
                ["preset", "global batch x seq", "processes", "tok/s (median ±IQR/2)", "speedup",
                 "efficiency [95% CI]", "loss agreement (train / val max rel diff)", "hardware", "report"], rows))


def footer(reports) -> str:
    seen = {}
    for f, r in reports:
        e = r["environment"]
        key = hardware_label(e)
        pk = e.get("packages", {})
        seen.setdefault(key, (f"{e.get('os', {}).get('platform', '?')}; Python {e.get('python')}; "
                              f"MLX {(e.get('mlx') or {}).get('version')} ({(e.get('mlx') or {}).get('backend')}); "
                              f"BLAS {(e.get('blas') or {}).get('name')}; torch {pk.get('torch')}; "
                              f"tokenizers {pk.get('tokenizers')}; numpy {pk.get('numpy')}; "
                              f"commit {(r.get('git') or {}).get('commit', '?') and str(r['git']['commit'])[:10]}"
                              f"{' (dirty)' if (r.get('git') or {}).get('dirty') else ''}"))
    return "#### Hardware and versions\n\n" + "\n".join(f"- **{k}**: {v}" for k, v in seen.items())


def markdown(reports) -> str:
    parts = [s for s in (section_bench(reports), section_passk(reports), section_train(reports), section_scaling(reports),
                         section_eval(reports), section_sampling(reports), section_claims(reports)) if s]
    if not parts:
        raise UsageError("no bench, train, scaling, eval or claims reports among the inputs; run `harness demo` first")
    return "\n\n".join(["<!-- generated by `harness publish`; do not edit by hand -->", *parts, footer(reports)]) + "\n"


def throughput_claims(reports) -> list[dict]:
    """The seed's training tokens/s claims next to (a) the most the claimed chip could do at 100% of its peak
    FLOP/s, 6N + 12LdT FLOPs per token, and (b) the best tokens/s this project measured for that preset
    (any hardware, MLX), with the hardware named."""
    from reference.config import get_config, train_flops_per_token

    from ..perf.hardware import lookup

    best: dict[str, tuple[float, str]] = {}
    for _, r in reports:
        if r["kind"] != "bench":
            continue
        for m in r["metrics"]:
            lab = m.get("labels") or {}
            if m["name"] == "train.tokens_per_s" and lab.get("framework") == "mlx" and m.get("value"):
                if m["value"] > best.get(lab.get("preset"), (0, ""))[0]:
                    best[lab["preset"]] = (m["value"], hardware_label(r["environment"]))
    rows = []
    for _, r in reports:
        if r["kind"] != "claims":
            continue
        for c in r.get("claims", []):
            cfg = c.get("configuration") or {}
            hw = lookup(c.get("hardware") or "")
            if c.get("metric") != "train.tokens_per_s" or not hw or not cfg.get("preset") or not cfg.get("seq"):
                continue
            peak, dtype = hw.max_peak()
            bound = peak / train_flops_per_token(get_config(cfg["preset"]), cfg["seq"])
            m = best.get(cfg["preset"])
            rows.append({"id": c["id"], "claimed": float(c["value"]), "bound": bound,
                         "label": f"{cfg['preset']} seq {cfg['seq']} on {hw.name} ({dtype} peak)",
                         "measured": m[0] if m else None, "measured_on": m[1] if m else None})
        break  # one claims report is enough
    return rows


def plots(reports, out_dir: Path) -> list[Path]:
    """SVG plot files beside RESULTS.md, drawn by the same code as the site's inline charts (site/svg.py):
    training throughput per configuration, loss curves, and the seed's throughput claims against the
    physical bound and what was measured."""
    import math

    from ..numbers import short
    from .svg import PALETTE, Bar, BarGroup, Point, Series, bar_chart, line_chart

    written = []
    hw_note = "; ".join(sorted({hardware_label(r["environment"]) for _, r in reports}))

    def save(name: str, title: str, svg: str) -> None:
        p = out_dir / name
        body = svg.replace(">", f"><desc>{_esc(title)}</desc>", 1)
        written.append(atomic_write_text(p, body + "\n"))

    rows = [(lab, ms) for _, _, lab, ms in bench_rows(reports) if ms.get("train.tokens_per_s")]
    if rows:
        groups = []
        for l, ms in rows:
            m = ms["train.tokens_per_s"]
            half = (m.get("stats") or {}).get("iqr", 0) / 2
            v = m["value"] or 0
            color = PALETTE[0] if l.get("framework", "mlx") == "mlx" else PALETTE[1]
            groups.append(BarGroup(f"{l.get('preset')}/{l.get('framework', 'mlx')} {l.get('batch')}x{l.get('seq')} "
                                   f"{l.get('dtype')}", [Bar(v, color, f"{cell(v)} tokens/s", v - half, v + half)]))
        save("throughput.svg", f"Training throughput per configuration; {hw_note}",
             bar_chart(groups, x_label=f"training tokens/s (median, IQR bars); {hw_note}",
                       legend=[("MLX", PALETTE[0]), ("PyTorch", PALETTE[1])]))

    curves = [r for _, r in reports if r["kind"] == "train" and (r.get("details") or {}).get("losses")]
    if curves:
        series = []
        for i, r in enumerate(curves):
            d = r["details"]
            lab = f"{r['config'].get('preset')} {d.get('stage', r['config'].get('stage', ''))}"
            color = PALETTE[i % len(PALETTE)]
            series.append(Series(f"{lab} train", [Point(s, v) for s, v in d["losses"]], color, marker=0))
            if d.get("val_losses"):
                series.append(Series(f"{lab} val", [Point(s, v) for s, v in d["val_losses"]], color, dashed=True))
        save("loss_curves.svg", f"Loss curves; {hw_note}",
             line_chart(series, x_label="step", y_label="cross-entropy (nats/token)", title=f"Loss curves; {hw_note}",
                        log_y=False))

    rows = throughput_claims(reports)
    if rows:
        def bar(v, color, what):  # log10 bars: the claims span orders of magnitude
            return Bar(math.log10(v) if v and v > 0 else None, color, f"{what}: {cell(v)} tokens/s")

        groups = [BarGroup(f"{r['id']} {r['label']}", [bar(r["claimed"], PALETTE[3], "claimed by the seed"),
                                                       bar(r["bound"], PALETTE[7], "upper bound"),
                                                       bar(r["measured"], PALETTE[2], "measured here")])
                  for r in rows]
        measured_on = "; ".join(sorted({r["measured_on"] for r in rows if r["measured_on"]})) or "nothing yet"
        save("claims_throughput.svg", "Seed's training-throughput claims vs the physical bound and our measurements",
             bar_chart(groups, x_label=f"training tokens/s (log scale); measured on: {measured_on}",
                       x_fmt=lambda x: short(10 ** x),
                       legend=[("claimed by the seed", PALETTE[3]),
                               ("bound: the chip's peak FLOP/s", PALETTE[7]),
                               ("measured here (MLX)", PALETTE[2])]))
    return written
