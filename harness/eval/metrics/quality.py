"""Code-quality metrics of a set of bash programs, in report form: syntax accuracy by bashlex and by
`bash -n`, ShellCheck clean rate and findings, and, over the programs that have a reference, BLEU and CodeBLEU.

`bash -n` and ShellCheck run as subprocesses on a background thread (`workers` at a time) while bashlex,
BLEU and CodeBLEU run on this thread; nothing is ever executed, `bash -n` only parses.
"""
from __future__ import annotations

import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata

from tqdm import tqdm

from ...errors import UsageError
from ...report import metric
from . import shellcheck as sc
from .bash_tokens import VERSION as TOKENIZER_VERSION
from .bleu import corpus_bleu_tokens
from .codebleu import DEFAULT_WEIGHTS, Side, corpus_codebleu, pair_stats, sentence_codebleu
from .syntax import bash_n_check, bash_path, bash_version, bashlex_check, summarize_bash_n, summarize_bashlex


def _tools(shellcheck: bool) -> dict:
    return {"bash": bash_version(), "bashlex": metadata.version("bashlex"),
            "sacrebleu": metadata.version("sacrebleu"), "tree_sitter_bash": metadata.version("tree-sitter-bash"),
            "tokenizer": TOKENIZER_VERSION,
            "shellcheck": sc.shellcheck_version() if shellcheck else None}


def _subprocess_checks(programs, shellcheck, workers, timeouts, bar):
    t0 = time.perf_counter()
    bash_n = bash_n_check(programs, workers, timeouts["bash_n"], progress=bar.update)
    t1 = time.perf_counter()
    checks = sc.shellcheck_programs(programs, workers, timeouts["shellcheck"], progress=bar.update) if shellcheck else None
    return bash_n, checks, {"bash_n": t1 - t0, "shellcheck": time.perf_counter() - t1 if shellcheck else None}


def quality_metrics(programs: list[str], references: list[str | None], *, shellcheck: bool = True,
                    workers: int = 2, weights: dict[str, float] | None = None, progress: bool | None = None,
                    bashlex_timeout_s: float = 5.0, bash_n_timeout_s: float = 10.0,
                    shellcheck_timeout_s: float = 30.0) -> dict:
    """Score `programs` (full bash programs); `references[i]` is the reference program for programs[i] or None.
    Build each reference the way its program is built (e.g. prompt + canonical solution for prompt +
    completion, both with or both without appended tests), or BLEU/CodeBLEU compare unlike things.

    Returns {"metrics": [harness.report.metric dicts], "per_sample": [one dict per program], "info": {...}}.
    BLEU/CodeBLEU cover the programs with a reference and are None when none has one. Raises UsageError when
    shellcheck=True and ShellCheck is not installed."""
    if len(references) != len(programs):
        raise ValueError(f"{len(programs)} programs but {len(references)} references")
    if bash_path() is None:
        raise UsageError("bash is not on PATH; `bash -n` judges syntax accuracy, so install bash")
    if shellcheck and sc.shellcheck_path() is None:
        raise UsageError("shellcheck is not installed; install it (apt-get install shellcheck) or turn the "
                         "ShellCheck metrics off")
    weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
    n = len(programs)
    t_start = time.perf_counter()
    timeouts = {"bash_n": bash_n_timeout_s, "shellcheck": shellcheck_timeout_s}
    total_steps = n * (3 if shellcheck else 2)
    with tqdm(total=total_steps, desc="quality metrics", unit="step", file=sys.stderr,
              disable=(not progress) if progress is not None else None, leave=False) as bar, \
            ThreadPoolExecutor(max_workers=1) as background:
        subprocs = background.submit(_subprocess_checks, programs, shellcheck, workers, timeouts, bar)
        t0 = time.perf_counter()
        memo: dict[str, object] = {}  # identical programs (repeated samples, shared references) parse once

        def parse(src: str):
            if src not in memo:
                memo[src] = bashlex_check(src, bashlex_timeout_s)
            return memo[src]

        sides: dict[str, Side] = {}  # samples of one task share its reference; repeated samples are common

        def side(src: str) -> Side:
            if src not in sides:
                sides[src] = Side.of(src)
            return sides[src]

        parsed = []
        for src, ref in zip(programs, references):
            parsed.append(parse(src))
            if ref is not None:
                side(src)  # tokenized while the tokenizer's cache still holds it
            bar.update(1)
        t_bashlex = time.perf_counter() - t0

        t0 = time.perf_counter()
        pairs = [i for i, r in enumerate(references) if r is not None]
        stats = [pair_stats(side(programs[i]), side(references[i])) for i in pairs]
        sentence = {i: sentence_codebleu(s, weights) for i, s in zip(pairs, stats)}
        sent_bleu = {i: v["ngram"] for i, v in sentence.items()}  # sentence BLEU: CodeBLEU's n-gram component
        bleu = corpus_bleu_tokens([sides[programs[i]].bleu for i in pairs],
                                  [sides[references[i]].bleu for i in pairs]) if pairs else None
        cb = corpus_codebleu(stats, weights) if pairs else None
        t_ref = time.perf_counter() - t0
        bash_n, checks, t_sub = subprocs.result()
    elapsed = time.perf_counter() - t_start

    bl_sum, bn_sum = summarize_bashlex(parsed), summarize_bash_n(bash_n)
    agree = {"both_ok": 0, "bashlex_error_bash_ok": 0, "bashlex_ok_bash_error": 0, "both_error": 0}
    for a, b in zip(parsed, bash_n):
        if a.outcome in ("ok", "syntax_error"):
            key = {("ok", True): "both_ok", ("syntax_error", True): "bashlex_error_bash_ok",
                   ("ok", False): "bashlex_ok_bash_error", ("syntax_error", False): "both_error"}
            agree[key[(a.outcome, b.outcome == "ok")]] += 1
    sc_sum = sc.summarize(checks) if checks is not None else None

    per_sample = []
    for i in range(n):
        s = {"index": i, "bashlex": parsed[i].outcome, "bashlex_construct": parsed[i].construct,
             "bashlex_message": parsed[i].message, "bash_n": bash_n[i].outcome, "bash_n_message": bash_n[i].message,
             "shellcheck": None, "bleu": sent_bleu.get(i), "codebleu": sentence.get(i)}
        if checks is not None:
            r = checks[i]
            s["shellcheck"] = {"checked": r.checked, "clean": r.clean, "clean_at_warning": r.clean_at_warning,
                               **{lvl: r.count(lvl) for lvl in sc.SEVERITIES},
                               "codes": sorted({f"SC{f.code}" for f in r.findings}), "failure": r.error}
        per_sample.append(s)

    cnt = bl_sum["counts"]
    judged = cnt["ok"] + cnt["syntax_error"]
    labels = {"programs": n}
    metrics = [
        metric("eval.syntax.bashlex", bl_sum["accuracy"], "ratio", True, labels={**labels, "judged": judged},
               note="ok / (ok + syntax_error); programs bashlex cannot parse (unsupported constructs, "
                    "parser crashes) are counted apart"),
        metric("eval.syntax.bashlex_unsupported_rate", bl_sum["unsupported_rate"], "ratio", None, labels=labels),
        metric("eval.syntax.bashlex_parser_error_rate", bl_sum["parser_error_rate"], "ratio", None, labels=labels),
        metric("eval.syntax.bash_n", bn_sum["accuracy"], "ratio", True, labels=labels,
               note="share of programs `bash -n` accepts (timeouts count as rejected)"),
    ]
    not_run = None if shellcheck else "ShellCheck not run"
    metrics += [
        metric("eval.shellcheck_clean", sc_sum and sc_sum["clean_rate"], "ratio", True,
               labels={**labels, "checked": sc_sum["checked"] if sc_sum else 0},
               note=not_run or "no finding at any severity (error, warning, info, style)"),
        metric("eval.shellcheck.clean_at_warning", sc_sum and sc_sum["clean_at_warning_rate"], "ratio", True,
               labels=labels, note=not_run or "no error or warning finding (info and style ignored)"),
    ]
    for lvl, plural in zip(sc.SEVERITIES, ("errors", "warnings", "info", "style")):
        metrics.append(metric(f"eval.shellcheck.{plural}_per_program",
                              sc_sum["per_program_by_severity"][lvl] if sc_sum else None, "findings/program", False,
                              labels=labels, note=not_run))
    pair_labels = {"pairs": len(pairs)}
    metrics += [
        metric("eval.bleu", bleu and bleu["score"], "ratio", True, labels=pair_labels,
               note=f"corpus BLEU / 100, sacrebleu {bleu['signature']}" if bleu else "no program has a reference"),
        metric("eval.codebleu", cb and cb["codebleu"], "ratio", True, labels=pair_labels,
               note="corpus CodeBLEU for bash; weights " + ", ".join(f"{k} {v:g}" for k, v in weights.items())
                    + " (unavailable components dropped and the rest renormalized)"),
    ]
    for comp in ("ngram", "weighted_ngram", "syntax", "dataflow"):
        metrics.append(metric(f"eval.codebleu.{comp}", cb and cb[comp], "ratio", True, labels=pair_labels))

    scores = [v["codebleu"] for v in sentence.values() if v["codebleu"] is not None]
    info = {
        "n_programs": n, "n_with_reference": len(pairs), "tools": _tools(shellcheck),
        "syntax": {"bashlex": bl_sum, "bash_n": bn_sum, "agreement_on_judged": agree},
        "shellcheck": sc_sum if sc_sum is not None else {"run": False},
        "bleu": bleu, "codebleu": cb,
        "codebleu_sentence_mean": statistics.fmean(scores) if scores else None,
        "timing_s": {"total": elapsed, "bashlex": t_bashlex, "bleu_codebleu": t_ref, **t_sub},
        "programs_per_s": n / elapsed if elapsed > 0 else None,
        "workers": workers,
    }
    return {"metrics": metrics, "per_sample": per_sample, "info": info}
