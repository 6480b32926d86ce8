"""`harness demo`: the whole pipeline on this machine in minutes — harvest the local corpus, train the
tokenizer, pretrain then fine-tune the `small` preset, generate, evaluate on the task suite, benchmark,
audit the seed's claims and publish — ending with a summary table and the path of every report written.

Each step is the real command a user would type (run in this process through harness.cli.main), so the
demo is also a smoke test of the command line. Heavy artifacts (token files, checkpoints) go to --work;
reports, tables and plots go to --results."""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

# Sized so that the whole demo takes about 10 minutes on 2 CPU cores (see README for the measured time).
DEFAULTS = dict(max_scripts=1500, max_text_bytes=4_000_000, vocab_size=4096,
                pretrain_steps=200, finetune_steps=150, batch_size=16, seq_len=128,
                eval_n=1, eval_max_tokens=160)


WORK_ENTRIES = ("data", "pretrain", "finetune")  # what a demo leaves in --work (and `harness data`'s .data.* folders)


def add_arguments(p):
    p.add_argument("--work", default="runs/demo", help="folder for token files and checkpoints (default runs/demo)")
    p.add_argument("--results", default="results/demo", help="folder for reports, tables and plots (default results/demo)")
    p.add_argument("--force", action="store_true", help="replace an earlier demo's work folder")
    p.add_argument("--fast", action="store_true", help="a much smaller run (about 2 minutes) for smoke tests")
    for k, v in DEFAULTS.items():
        p.add_argument(f"--{k.replace('_', '-')}", type=type(v), default=None, help=f"default {v}")


def _step(title: str, argv: list[str], log: list) -> float:
    from ..cli import main

    print(f"\n== {title}: harness {' '.join(argv)}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    rc = main(argv)
    dt = time.perf_counter() - t0
    log.append({"step": title, "argv": ["harness", *argv], "exit": rc, "seconds": round(dt, 1)})
    if rc not in (0,):
        from ..errors import CheckFailed

        raise CheckFailed(f"demo step '{title}' failed (exit {rc}): harness {' '.join(argv)}")
    return dt


def run(args) -> int:
    from ..errors import UsageError
    from ..report import make_report, metric, write_report

    cfg = {k: (getattr(args, k) if getattr(args, k) is not None else v) for k, v in DEFAULTS.items()}
    if args.fast:
        cfg.update(max_scripts=300, max_text_bytes=600_000, vocab_size=1024, pretrain_steps=30,
                   finetune_steps=20, batch_size=8, seq_len=128, eval_max_tokens=48)
    from ..outputs import check_output

    work = check_output(args.work, "--work", kind="dir")
    res = check_output(args.results, "--results", kind="dir")
    if work.exists() and any(work.iterdir()):
        if not args.force:
            raise UsageError(f"{work} already holds an earlier demo; pass --force to replace it or --work DIR")
        other = sorted(p.name for p in work.iterdir() if p.name not in WORK_ENTRIES and not p.name.startswith(".data."))
        if other:
            raise UsageError(f"--work {work} holds {', '.join(other[:3])}, which the demo did not write; refusing to "
                             f"delete it even with --force: pass another --work")
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    res.mkdir(parents=True, exist_ok=True)
    data, pre, fin = work / "data", work / "pretrain", work / "finetune"
    log: list[dict] = []
    t_all = time.perf_counter()
    common = ["--batch-size", str(cfg["batch_size"]), "--seq-len", str(cfg["seq_len"])]

    _step("harvest corpus + train tokenizer + pack", [
        "data", "--out", str(data), "--vocab-size", str(cfg["vocab_size"]),
        "--max-scripts", str(cfg["max_scripts"]), "--max-text-bytes", str(cfg["max_text_bytes"])], log)
    _step("stage 1: pretrain on text", [
        "train", "--config", "configs/pretrain-small.json", "--data", str(data), "--out", str(pre),
        "--steps", str(cfg["pretrain_steps"]), *common], log)
    _step("stage 2: fine-tune on bash", [
        "train", "--config", "configs/finetune-small.json", "--data", str(data), "--out", str(fin),
        "--init", str(pre), "--steps", str(cfg["finetune_steps"]), *common], log)
    _step("generate", ["generate", "--checkpoint", str(fin), "--prompt",
                       "#!/bin/bash\n# Print the number of lines in each file given as an argument.\n",
                       "--max-tokens", "80", "--seed", "0", "--report", str(res / "generate.json")], log)
    _step("evaluate on the task suite", [
        "eval", "--checkpoint", str(fin), "--n", str(cfg["eval_n"]), "--k", "1",
        "--max-tokens", str(cfg["eval_max_tokens"]), "--out", str(res / "eval.json")], log)
    _step("benchmark (MLX beside the PyTorch twin)", [
        "bench", "--config", "small", "--quick", "--twin", "--out", str(res / "bench.json")], log)
    # exit 1 is the claims command's verdict on the seed (refuted/impossible claims), not a demo failure
    _step("claims audit", ["claims", "--out", str(res / "claims.json"), "--fail-on", "none", "--summary"], log)

    for name, run_dir in (("train-pretrain", pre), ("train-finetune", fin)):
        shutil.copyfile(run_dir / "report.json", res / f"{name}.json")
        shutil.copyfile(run_dir / "metrics.jsonl", res / f"{name}.metrics.jsonl")

    def write_demo_report():
        total = time.perf_counter() - t_all
        report = make_report("demo", {**cfg, "work": str(work), "results": str(res)},
                             [metric("demo.wall_s", total, "s", False)],
                             details={"steps": log, "summary": summary, "data": data_info})
        write_report(report, res / "demo.json")
        return total

    summary = _summary(res)
    manifest = json.loads((data / "manifest.json").read_text())
    data_info = {"vocab_size": manifest["vocab_size"], "tokenizer_sha256": manifest["tokenizer"].get("sha256"),
                 "corpora": {name: {"funnel": c.get("funnel"), "roundtrip": c.get("roundtrip"),
                                    **{split: {k: c[split][k] for k in ("documents", "tokens", "bytes") if k in c[split]}
                                       for split in ("train", "val")}}
                             for name, c in manifest["corpora"].items()}}
    kept = (data_info["corpora"].get("bash", {}).get("funnel") or {}).get("kept")
    if kept is not None:
        summary.insert(0, ("unique valid bash scripts harvested", f"{kept:,}", "demo.json (details.data)"))
    # demo.json is written before publishing, so the site shows this run's demo report, not an earlier one
    # left in --results; it is written again afterwards with the publish step's time
    write_demo_report()
    _step("publish", ["publish", str(res), "--out", str(res), "--site", str(res / "site")], log)
    total = write_demo_report()
    _print_summary(summary, log, total, res)
    return 0


def _summary(res: Path) -> list[tuple[str, str, str]]:
    from ..report import get_metric, load_report

    rows = []

    def add(label, file, name, fmt="{:.4g}", scale=1.0):
        p = res / file
        if not p.is_file():
            return
        m = get_metric(load_report(p), name)
        if m and m.get("value") is not None:
            rows.append((label, fmt.format(m["value"] * scale), file))

    add("stage 1 final train loss", "train-pretrain.json", "train.loss")
    add("stage 1 val loss", "train-pretrain.json", "train.val_loss")
    add("stage 2 final train loss", "train-finetune.json", "train.loss")
    add("stage 2 val loss", "train-finetune.json", "train.val_loss")
    add("training tokens/s (stage 1)", "train-pretrain.json", "train.tokens_per_s", "{:,.0f}")
    add("generation tokens/s", "generate.json", "gen.tokens_per_s", "{:,.0f}")
    add("pass@1 (task suite)", "eval.json", "eval.pass@1", "{:.1%}")
    add("syntax ok (bash -n)", "eval.json", "eval.syntax.bash_n", "{:.1%}")
    add("shellcheck clean", "eval.json", "eval.shellcheck_clean", "{:.1%}")
    add("CodeBLEU", "eval.json", "eval.codebleu", "{:.3f}")
    p = res / "bench.json"
    if p.is_file():
        tps = {m["labels"]["framework"]: m["value"] for m in load_report(p)["metrics"]
               if m["name"] == "train.tokens_per_s" and m.get("value")}
        if "mlx" in tps and "torch" in tps:
            rows.append(("training tokens/s, MLX / PyTorch twin (same run)",
                         f"{tps['mlx']:,.0f} / {tps['torch']:,.0f} = {tps['mlx'] / tps['torch']:.2f}x", "bench.json"))
    p = res / "claims.json"
    if p.is_file():
        r = json.loads(p.read_text())
        counts: dict[str, int] = {}
        for c in r.get("claims", []):
            counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
        rows.append(("seed claims audited", ", ".join(f"{v} {k}" for k, v in sorted(counts.items())), "claims.json"))
    return rows


def _print_summary(rows, log, total, res: Path):
    from rich.console import Console
    from rich.table import Table

    from ..environment import fingerprint, hardware_label

    con = Console(width=140)
    t = Table(title=f"harness demo — {hardware_label(fingerprint())} — {total / 60:.1f} min")
    t.add_column("result")
    t.add_column("value", justify="right")
    t.add_column("report")
    for r in rows:
        t.add_row(*r)
    con.print(t)
    s = Table(title="steps")
    s.add_column("step")
    s.add_column("seconds", justify="right")
    for e in log:
        s.add_row(e["step"], f"{e['seconds']:.0f}")
    con.print(s)
    print("reports written:")
    for p in sorted(res.iterdir()):
        print(f"  {p}")
