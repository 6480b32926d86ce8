"""Measure the regression gate: false alarms over pairs of identical `harness bench --quick` runs, and detection
of slowdowns the machine makes: the new run sharing every core with a busy loop per core ("contended"), sharing
the first core with one busy loop ("half contended"), and pinned to one core with `taskset -c 0` ("one core").

    .venv/bin/python scripts/gate_check.py --pairs 10 --slow-pairs 2 --half-pairs 2 --one-core-pairs 2 \
        --out results/cpu/gate-check.json

Each pair is two separate processes run back to back, then `harness compare BASE NEW` (exit 1 = a regression
shown). The one-core run reports cpu.cores = 1, so its comparison passes --ignore cpu.cores. The report names
the machine (harness's environment capture) and the load average seen before and after every run."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HARNESS = str(Path(sys.executable).parent / "harness")
KINDS = ("contended", "half contended", "one core")


def bench(out: Path, args, pin: bool = False, hog: int = 0) -> dict:
    cmd = (["taskset", "-c", "0"] if pin else []) + [HARNESS, "bench", "--config", args.config, "--quick",
                                                    "--out", str(out), *args.bench_args]
    hogs = [subprocess.Popen(["taskset", "-c", str(c), sys.executable, "-c", "while True: pass"])
            for c in sorted(os.sched_getaffinity(0))[:hog]]
    before, t0 = os.getloadavg(), time.time()
    try:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    return {"path": str(out), "pinned_to_one_core": pin, "busy_loops": hog, "wall_s": round(time.time() - t0, 1),
            "loadavg_before": [round(x, 2) for x in before], "loadavg_after": [round(x, 2) for x in os.getloadavg()]}


def compare(base: Path, new: Path, ignore=()) -> dict:
    cmd = [HARNESS, "compare", str(base), str(new), "--json", *[a for k in ignore for a in ("--ignore", k)]]
    p = subprocess.run(cmd, capture_output=True, text=True)
    out = json.loads(p.stdout) if p.stdout.strip().startswith("{") else {}
    rows = {r["name"] + ("[" + r["labels"].get("framework", "") + "]" if r.get("labels") else ""): {
        "verdict": r["status"], "change": r["change"], "ci": r["ci"], "p": r["p_value"], "method": r["method"],
        "more": r["more"]} for r in out.get("rows", [])}
    return {"exit": p.returncode, "regressions": out.get("regressions", []), "rows": rows,
            "stderr": p.stderr.strip()[-300:] if p.returncode not in (0, 1) else ""}


def _bench_environment(pairs) -> dict:
    """The environment the bench runs recorded (their process preloads OpenBLAS; this one does not)."""
    from harness.environment import fingerprint

    for p in pairs:
        try:
            return json.loads(Path(p["runs"][0]["path"]).read_text())["environment"]
        except (OSError, KeyError, ValueError):
            continue
    return fingerprint()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--slow-pairs", type=int, default=3, help="pairs whose new run shares the cores with busy loops")
    ap.add_argument("--half-pairs", type=int, default=2, help="pairs whose new run shares core 0 with a busy loop")
    ap.add_argument("--one-core-pairs", type=int, default=2, help="pairs whose new run is pinned to one core")
    ap.add_argument("--budget-s", type=float, default=None, help="start no pair that would end after this many seconds")
    ap.add_argument("--config", default="small")
    ap.add_argument("--work", default="runs/gate-check")
    ap.add_argument("--out", default="results/cpu/gate-check.json")
    ap.add_argument("bench_args", nargs="*", help="extra `harness bench` arguments (after --)")
    args = ap.parse_args()

    from harness.report import make_report, metric, write_report

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    identical, slow = [], []
    # identical and slowed pairs interleaved, so that a run stopped by --budget-s still covers every kind
    slowed = ([("contended", i) for i in range(args.slow_pairs)] + [("half contended", i) for i in range(args.half_pairs)]
              + [("one core", i) for i in range(args.one_core_pairs)])
    slowed = sorted(slowed, key=lambda k: (k[1], KINDS.index(k[0])))
    every = max(1, args.pairs // max(1, len(slowed)))
    plan, q = [], list(slowed)
    for i in range(args.pairs):
        plan.append(("identical", i))
        if (i + 1) % every == 0 and q:
            plan.append(q.pop(0))
    plan += q
    pair_s = []
    for kind, i in plan:
        if args.budget_s and pair_s and time.time() - started + max(pair_s) > args.budget_s:
            print(f"budget of {args.budget_s} s reached: {len(identical)} identical and {len(slow)} slowed pairs",
                  file=sys.stderr)
            break
        t0 = time.time()
        tag = kind.replace(" ", "-")
        a, b = work / f"{tag}-{i}-base.json", work / f"{tag}-{i}-new.json"
        new_opts = {"contended": {"hog": len(os.sched_getaffinity(0))}, "half contended": {"hog": 1},
                    "one core": {"pin": True}}.get(kind, {})
        runs = [bench(a, args), bench(b, args, **new_opts)]
        c = compare(a, b, ignore=["cpu.cores"] if kind == "one core" else [])
        (identical if kind == "identical" else slow).append({"pair": i, "slowdown": kind, "runs": runs, **c})
        pair_s.append(time.time() - t0)
        print(f"{kind} {i}: exit {c['exit']} {c['regressions']} ({pair_s[-1]:.0f} s)", file=sys.stderr)

    alarms = sum(p["exit"] == 1 for p in identical)
    errors = sum(p["exit"] not in (0, 1) for p in identical + slow)
    detected = {kind: sum(p["exit"] == 1 and any(k.startswith("train.tokens_per_s") for k in p["regressions"])
                          for p in slow if p["slowdown"] == kind) for kind in KINDS}
    train_key = lambda p: next((k for k in p["rows"] if k.startswith("train.tokens_per_s")), None)  # noqa: E731
    verdicts = {}
    for p in identical:
        for k, r in p["rows"].items():
            verdicts.setdefault(k, {}).setdefault(r["verdict"], 0)
            verdicts[k][r["verdict"]] += 1
    slowdowns = {kind: [p["rows"][train_key(p)]["change"] for p in slow if p["slowdown"] == kind and train_key(p)]
                 for kind in KINDS}
    loads = [r["loadavg_before"][0] for p in identical + slow for r in p["runs"]]
    metrics = [
        metric("gate.identical_pairs", len(identical), "pairs", None),
        metric("gate.false_alarms", alarms, "pairs", False, note="identical pairs where harness compare exited 1"),
        *(m for kind in KINDS for key in [kind.replace(" ", "_")] for m in (
            metric(f"gate.{key}_pairs", sum(p["slowdown"] == kind for p in slow), "pairs", None),
            metric(f"gate.{key}_detected", detected[kind], "pairs", True,
                   note=f"{kind} pairs where train.tokens_per_s was a regression (exit 1)"),
            metric(f"gate.{key}_change", None, "ratio", None, samples=slowdowns[kind],
                   note=f"train tokens/s of the {kind} run over its base run, minus 1"))),
        metric("gate.loadavg_1min", None, "load", None, samples=loads,
               note="1-minute load average before each run (2 cores: above 2 means other work was waiting)"),
    ]
    rep = make_report("compare", {"pairs": args.pairs, "slow_pairs": args.slow_pairs, "budget_s": args.budget_s,
                                  "one_core_pairs": args.one_core_pairs, "config": args.config,
                                  "bench": ["--quick", *args.bench_args],
                                  "half_pairs": args.half_pairs,
                                  "slowdowns": {"contended": "one busy loop pinned to each core during the new run",
                                                "half contended": "one busy loop pinned to core 0 during the new run",
                                                "one core": "taskset -c 0 on the new run"}},
                      metrics, "ok" if not errors else "partial", environment=_bench_environment(identical + slow),
                      details={"wall_s": round(time.time() - started), "verdicts_identical": verdicts,
                               "compare_errors": errors, "identical": identical, "slow": slow})
    print(write_report(rep, args.out))
    print(f"false alarms {alarms}/{len(identical)}, detected {detected}, "
          f"load {min(loads, default=0):.2f}-{max(loads, default=0):.2f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
